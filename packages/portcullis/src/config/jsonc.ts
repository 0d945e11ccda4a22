/**
 * Comments in configuration files: `// …` to the end of the line and `/* … *\/`, outside strings,
 * as `portcullis init --production` writes them to explain each setting. Each comment is replaced
 * by spaces (its newlines kept), so a JSON error's line and column still point into the file as
 * written. Nothing else of JSON5 (trailing commas, unquoted names) is accepted: a typo stays an error.
 */
export function stripJsonComments(text: string): string {
  // Fast path: most files have no comment at all.
  if (!text.includes("/")) return text;
  let out = "";
  let i = 0;
  let copiedTo = 0;
  const n = text.length;
  const blank = (from: number, to: number): void => {
    out += text.slice(copiedTo, from) + text.slice(from, to).replace(/[^\n\r]/g, " ");
    copiedTo = to;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip the string, honouring escapes; an unterminated one is JSON's error to report.
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22) {
          i++;
          break;
        } else i++;
      }
      continue;
    }
    if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2f) {
      let end = i + 2;
      while (end < n && text[end] !== "\n" && text[end] !== "\r") end++;
      blank(i, end);
      i = end;
      continue;
    }
    if (c === 0x2f && text.charCodeAt(i + 1) === 0x2a /* * */) {
      const close = text.indexOf("*/", i + 2);
      // An unterminated block comment is left as it is: JSON.parse reports it.
      if (close === -1) break;
      blank(i, close + 2);
      i = close + 2;
      continue;
    }
    i++;
  }
  return out + text.slice(copiedTo);
}
