import { isJsonObject } from "../../contract/json.js";

/**
 * A small schema builder for the admin API's structural contract: one declaration validates a
 * request (types, required members, enums, lengths, patterns, ranges, list sizes, unknown members
 * refused) and emits JSON Schema 2020-12 for the OpenAPI 3.1 document (admin/schema/openapi.ts).
 *
 * Why not zod v4 (`z.strictObject`, `z.toJSONSchema`)? It would do, but the admin API already has
 * a refusal shape — VALIDATION_FAILED with `fields`, a null-prototype map of field → a problem a
 * user can act on ("unknown field", "an integer from 1 to 1000") — and the parsers behind it
 * (keys/input.ts…) report problems in those words. Mapping zod's issues onto it (paths, record
 * keys, messages of unions) and its generated schemas onto a clean document (no `$defs` noise,
 * no transforms) is about as much code as these nine node kinds, which add no dependency to the
 * server, read only own members (the bodies are null-prototype objects from `parseJsonBody`, so
 * `__proto__` is an unknown member like any other), never throw on input, and are compiled once.
 */

/** JSON Schema (2020-12), as plain data. */
export type JsonSchema = { readonly [member: string]: unknown };

interface Common {
  /** What the value is, for the document and as the problem text when the value is wrong. */
  readonly description?: string;
  /** The problem text when a required member is absent (default "required"). */
  readonly missing?: string;
}

export interface StringNode extends Common {
  readonly kind: "string";
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: RegExp;
  readonly enum?: readonly string[];
  readonly format?: string;
}
export interface IntegerNode extends Common {
  readonly kind: "integer";
  readonly minimum?: number;
  readonly maximum?: number;
}
export interface NumberNode extends Common {
  readonly kind: "number";
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
}
export interface BooleanNode extends Common {
  readonly kind: "boolean";
}
export interface ArrayNode extends Common {
  readonly kind: "array";
  readonly items: Node;
  readonly minItems?: number;
  readonly maxItems?: number;
}
export interface ObjectNode extends Common {
  readonly kind: "object";
  readonly properties: Readonly<Record<string, Node>>;
  readonly required: readonly string[];
  /** Members not declared are refused ("unknown field"), unless the object is open (answers only). */
  readonly open: boolean;
}
/** An object whose member names the sender chooses (limit overrides): problems are named by the record. */
export interface RecordNode extends Common {
  readonly kind: "record";
  readonly values: Node;
  readonly keyPattern?: RegExp;
  readonly maxProperties?: number;
}
export interface NullableNode extends Common {
  readonly kind: "nullable";
  readonly inner: Node;
}
/** One of several shapes (a duration as text or milliseconds). */
export interface AnyOfNode extends Common {
  readonly kind: "anyOf";
  readonly options: readonly Node[];
}
/** Any JSON value (answers too large to declare member by member; the domain parser's documents). */
export interface AnyNode extends Common {
  readonly kind: "any";
}
/** A named schema, emitted once under `components/schemas` and referenced. */
export interface RefNode extends Common {
  readonly kind: "ref";
  readonly name: string;
  readonly target: Node;
}
export interface OptionalNode {
  readonly kind: "optional";
  readonly inner: Node;
}

export type Node = StringNode | IntegerNode | NumberNode | BooleanNode | ArrayNode | ObjectNode | RecordNode | NullableNode | AnyOfNode | AnyNode | RefNode;
type Member = Node | OptionalNode;

type Options<N> = Omit<N, "kind">;

/** The builder. */
export const s = {
  string: (o: Options<StringNode> = {}): StringNode => ({ kind: "string", ...o }),
  enum: (values: readonly string[], description?: string): StringNode => ({ kind: "string", enum: values, ...(description === undefined ? {} : { description }) }),
  integer: (o: Options<IntegerNode> = {}): IntegerNode => ({ kind: "integer", ...o }),
  number: (o: Options<NumberNode> = {}): NumberNode => ({ kind: "number", ...o }),
  boolean: (description?: string): BooleanNode => ({ kind: "boolean", ...(description === undefined ? {} : { description }) }),
  array: (items: Node, o: Omit<ArrayNode, "kind" | "items"> = {}): ArrayNode => ({ kind: "array", items, ...o }),
  nullable: (inner: Node, description?: string): NullableNode => ({ kind: "nullable", inner, ...(description === undefined ? {} : { description }) }),
  anyOf: (options: readonly Node[], description?: string): AnyOfNode => ({ kind: "anyOf", options, ...(description === undefined ? {} : { description }) }),
  any: (description?: string): AnyNode => ({ kind: "any", ...(description === undefined ? {} : { description }) }),
  record: (values: Node, o: Omit<RecordNode, "kind" | "values"> = {}): RecordNode => ({ kind: "record", values, ...o }),
  ref: (name: string, target: Node): RefNode => ({ kind: "ref", name, target }),
  optional: (inner: Node): OptionalNode => ({ kind: "optional", inner }),
  /** A strict object: members not declared are refused. */
  object: (members: Readonly<Record<string, Member>>, description?: string): ObjectNode => objectNode(members, false, description),
  /** An open object (answers, which may grow members). */
  openObject: (members: Readonly<Record<string, Member>>, description?: string): ObjectNode => objectNode(members, true, description),
};

function objectNode(members: Readonly<Record<string, Member>>, open: boolean, description: string | undefined): ObjectNode {
  const properties: Record<string, Node> = {};
  const required: string[] = [];
  for (const [name, m] of Object.entries(members)) {
    if (m.kind === "optional") properties[name] = m.inner;
    else {
      properties[name] = m;
      required.push(name);
    }
  }
  return { kind: "object", properties, required, open, ...(description === undefined ? {} : { description }) };
}

/** Field → problem (a null-prototype record: names may be the sender's). */
export type Problems = Record<string, string>;

/** Checks `value` against `node`; problems are added under `path` (dotted members, `[i]` items). */
export function check(node: Node, value: unknown, path: string, problems: Problems): void {
  switch (node.kind) {
    case "string":
      if (typeof value !== "string" || !stringOk(node, value)) problems[path] = describe(node);
      return;
    case "integer":
      if (typeof value !== "number" || !Number.isSafeInteger(value) || (node.minimum !== undefined && value < node.minimum) || (node.maximum !== undefined && value > node.maximum)) problems[path] = describe(node);
      return;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value) || (node.exclusiveMinimum !== undefined && value <= node.exclusiveMinimum) || (node.exclusiveMaximum !== undefined && value >= node.exclusiveMaximum)) problems[path] = describe(node);
      return;
    case "boolean":
      if (typeof value !== "boolean") problems[path] = describe(node);
      return;
    case "array":
      checkArray(node, value, path, problems);
      return;
    case "object":
      checkObject(node, value, path, problems);
      return;
    case "record":
      if (!recordOk(node, value)) problems[path] = describe(node);
      return;
    case "nullable":
      if (value !== null) check(node.inner, value, path, problems);
      return;
    case "anyOf":
      if (!node.options.some((o) => matches(o, value))) problems[path] = describe(node);
      return;
    case "any":
      return;
    case "ref":
      check(node.target, value, path, problems);
  }
}

/** Whether `value` matches `node`, problems discarded. */
export function matches(node: Node, value: unknown): boolean {
  const problems: Problems = Object.create(null) as Problems;
  check(node, value, "", problems);
  return Object.keys(problems).length === 0;
}

function stringOk(node: StringNode, value: string): boolean {
  if (node.minLength !== undefined && value.length < node.minLength) return false;
  if (node.maxLength !== undefined && value.length > node.maxLength) return false;
  if (node.pattern !== undefined && !node.pattern.test(value)) return false;
  return node.enum === undefined || node.enum.includes(value);
}

function checkArray(node: ArrayNode, value: unknown, path: string, problems: Problems): void {
  if (!Array.isArray(value) || (node.minItems !== undefined && value.length < node.minItems) || (node.maxItems !== undefined && value.length > node.maxItems)) {
    problems[path] = describe(node);
    return;
  }
  // A list of objects names the member at fault; a list of values is at fault as a whole.
  if (inner(node.items).kind === "object") {
    value.forEach((item, i) => {
      check(node.items, item, `${path}[${i}]`, problems);
    });
  } else if (!value.every((item) => matches(node.items, item))) {
    problems[path] = describe(node);
  }
}

function checkObject(node: ObjectNode, value: unknown, path: string, problems: Problems): void {
  const at = (name: string): string => (path === "" ? name : `${path}.${name}`);
  if (!isJsonObject(value)) {
    problems[path === "" ? "body" : path] = describe(node);
    return;
  }
  if (!node.open) for (const name of Object.keys(value)) if (!Object.hasOwn(node.properties, name)) problems[at(name)] = "unknown field";
  for (const [name, member] of Object.entries(node.properties)) {
    const v = Object.hasOwn(value, name) ? value[name] : undefined;
    if (v === undefined) {
      if (node.required.includes(name)) problems[at(name)] = member.missing ?? "required";
    } else check(member, v, at(name), problems);
  }
}

function recordOk(node: RecordNode, value: unknown): boolean {
  if (!isJsonObject(value)) return false;
  const names = Object.keys(value);
  if (node.maxProperties !== undefined && names.length > node.maxProperties) return false;
  return names.every((name) => (node.keyPattern === undefined || node.keyPattern.test(name)) && matches(node.values, value[name]));
}

function inner(node: Node): Node {
  return node.kind === "ref" ? inner(node.target) : node.kind === "nullable" ? inner(node.inner) : node;
}

/** The value a node asks for, in words: the problem text when a value is wrong. */
export function describe(node: Node): string {
  if (node.description !== undefined) return node.description;
  switch (node.kind) {
    case "string": {
      if (node.enum !== undefined) return `one of ${node.enum.join(", ")}`;
      const { minLength: min, maxLength: max } = node;
      const size = min !== undefined && max !== undefined ? ` of ${min} to ${max} characters` : max !== undefined ? ` of at most ${max} characters` : min !== undefined ? ` of at least ${min} characters` : "";
      return `a string${size}${node.pattern === undefined ? "" : ` matching ${node.pattern.source}`}`;
    }
    case "integer":
      return node.minimum !== undefined && node.maximum !== undefined ? `an integer from ${node.minimum} to ${node.maximum}` : node.minimum !== undefined ? `an integer of at least ${node.minimum}` : "an integer";
    case "number":
      return "a number";
    case "boolean":
      return "true or false";
    case "array": {
      const { minItems: min, maxItems: max } = node;
      const size = min !== undefined && max !== undefined ? `${min} to ${max}` : max !== undefined ? `at most ${max}` : min !== undefined ? `at least ${min}` : "";
      return `a list of ${size === "" ? "" : `${size} `}items, each ${describe(node.items)}`;
    }
    case "object":
      return "an object";
    case "record":
      return `an object of names to values, each ${describe(node.values)}`;
    case "nullable":
      return `${describe(node.inner)}, or null`;
    case "anyOf":
      return node.options.map(describe).join(", or ");
    case "any":
      return "any JSON value";
    case "ref":
      return describe(node.target);
  }
}

/**
 * The JSON Schema 2020-12 of `node`. Named nodes become `$ref`s to `#/components/schemas/<name>`,
 * collected in `components` (once each).
 */
export function toJsonSchema(node: Node, components: Map<string, JsonSchema>): JsonSchema {
  const doc = (x: JsonSchema): JsonSchema => (node.description === undefined ? x : { ...x, description: node.description });
  switch (node.kind) {
    case "string":
      return doc({
        type: "string",
        ...(node.enum === undefined ? {} : { enum: node.enum }),
        ...(node.minLength === undefined ? {} : { minLength: node.minLength }),
        ...(node.maxLength === undefined ? {} : { maxLength: node.maxLength }),
        ...(node.pattern === undefined ? {} : { pattern: node.pattern.source }),
        ...(node.format === undefined ? {} : { format: node.format }),
      });
    case "integer":
      return doc({ type: "integer", ...(node.minimum === undefined ? {} : { minimum: node.minimum }), ...(node.maximum === undefined ? {} : { maximum: node.maximum }) });
    case "number":
      return doc({ type: "number", ...(node.exclusiveMinimum === undefined ? {} : { exclusiveMinimum: node.exclusiveMinimum }), ...(node.exclusiveMaximum === undefined ? {} : { exclusiveMaximum: node.exclusiveMaximum }) });
    case "boolean":
      return doc({ type: "boolean" });
    case "array":
      return doc({ type: "array", items: toJsonSchema(node.items, components), ...(node.minItems === undefined ? {} : { minItems: node.minItems }), ...(node.maxItems === undefined ? {} : { maxItems: node.maxItems }) });
    case "object": {
      const properties: Record<string, JsonSchema> = {};
      for (const [name, member] of Object.entries(node.properties)) properties[name] = toJsonSchema(member, components);
      return doc({ type: "object", properties, ...(node.required.length === 0 ? {} : { required: node.required }), ...(node.open ? {} : { additionalProperties: false }) });
    }
    case "record":
      return doc({
        type: "object",
        ...(node.keyPattern === undefined ? {} : { propertyNames: { pattern: node.keyPattern.source } }),
        additionalProperties: toJsonSchema(node.values, components),
        ...(node.maxProperties === undefined ? {} : { maxProperties: node.maxProperties }),
      });
    case "nullable": {
      const x = toJsonSchema(node.inner, components);
      if (typeof x.type === "string" && x.enum === undefined) return doc({ ...x, type: [x.type, "null"] });
      return doc({ anyOf: [x, { type: "null" }] });
    }
    case "anyOf":
      return doc({ anyOf: node.options.map((o) => toJsonSchema(o, components)) });
    case "any":
      return doc({});
    case "ref":
      if (!components.has(node.name)) {
        components.set(node.name, {});
        components.set(node.name, toJsonSchema(node.target, components));
      }
      return doc({ $ref: `#/components/schemas/${node.name}` });
  }
}
