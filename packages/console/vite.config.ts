import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The console is served by the admin listener under /console/ with a strict CSP (docs/console.md):
 * no inline script, so Vite's module preload polyfill (an inline script in dev only) is off and
 * everything is an external file under assets/.
 */
/**
 * `npx vite` (development): the admin API is proxied on the dev server's origin, Host header
 * untouched (`changeOrigin: false`), since the requests' signatures cover `@authority`.
 */
const admin = process.env.PORTCULLIS_ADMIN ?? "http://127.0.0.1:8081";

export default defineConfig({
  base: "/console/",
  server: {
    proxy: {
      "/portcullis": { target: admin, changeOrigin: false },
      "/admin": { target: admin, changeOrigin: false },
    },
  },
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
