/**
 * OK-ACCESS-TIMESTAMP: ISO 8601 in UTC with milliseconds, exactly as OKX documents it
 * (`2020-12-08T09:08:57.715Z`). Parsed by character codes, with no regular expression and no
 * allocation; anything else (another offset, no milliseconds, microseconds, lower-case `t`/`z`,
 * an impossible date) is refused.
 */
const LENGTH = 24;
const DASH = 45;
const COLON = 58;
const DOT = 46;
const T = 84;
const Z = 90;

/** `count` decimal digits of `text` from `start` as a number, or -1. */
function digits(text: string, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Epoch milliseconds of an OKX timestamp, or NaN when it is not one. */
export function parseOkxTimestamp(text: string): number {
  if (text.length !== LENGTH) return NaN;
  if (
    text.charCodeAt(4) !== DASH ||
    text.charCodeAt(7) !== DASH ||
    text.charCodeAt(10) !== T ||
    text.charCodeAt(13) !== COLON ||
    text.charCodeAt(16) !== COLON ||
    text.charCodeAt(19) !== DOT ||
    text.charCodeAt(23) !== Z
  ) {
    return NaN;
  }
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  const millis = digits(text, 20, 3);
  // Years before 1970 are refused too: Date.UTC would also read 0000-0099 as 1900-1999.
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return NaN;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || millis < 0) return NaN;
  return Date.UTC(year, month - 1, day, hour, minute, second, millis);
}
