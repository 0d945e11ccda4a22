import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The console is served by the admin listener under /console/ with a strict CSP (docs/console.md):
 * no inline script, so Vite's module preload polyfill (an inline script in dev only) is off and
 * everything is an external file under assets/.
 */
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
});
