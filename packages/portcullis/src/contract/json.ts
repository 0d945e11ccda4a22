/**
 * Untrusted JSON, read safely. `JSON.parse` makes a member named `__proto__` an own property of
 * an ordinary object; copied by assignment into another ordinary object (a map of field errors,
 * a map of parameters) it sets that object's prototype instead of adding a key, so the field
 * vanishes (an unknown field passes unseen) or, with an object value, the copy inherits whatever
 * the sender chose. Names such as `constructor` or `toString` read from an ordinary object give
 * `Object.prototype`'s members when the sender did not send them.
 *
 * So every parser of untrusted JSON reads it with `parseJson` (objects without a prototype:
 * a member is there only if it was sent), keeps what it builds from the sender's names in
 * `record()`s or `Map`s, and checks names against a `Set` of the fields it knows.
 */

/** A parsed JSON object: a null-prototype record of its members. */
export type JsonObject = Record<string, unknown>;

function withoutPrototype(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) Object.setPrototypeOf(value, null);
  return value;
}

/** `JSON.parse` whose objects have no prototype. Throws SyntaxError as `JSON.parse` does. */
export function parseJson(text: string): unknown {
  return JSON.parse(text, withoutPrototype) as unknown;
}

/** Is `value` a JSON object (not null, not an array)? */
export function isJsonObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** An empty null-prototype record, for maps keyed by names a sender chose (field errors, params). */
export function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/**
 * The names of `Object.prototype`'s members (`__proto__`, `constructor`, `toString`,
 * `hasOwnProperty`…). No field, parameter or limit of Portcullis has one of these names; a parser
 * refuses them where it accepts names of the sender's choosing.
 */
export const PROTOTYPE_NAMES: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/** The own member names of `o` that are not in `known`, in order. */
export function unknownMembers(o: object, known: ReadonlySet<string>): string[] {
  return Object.keys(o).filter((name) => !known.has(name));
}
