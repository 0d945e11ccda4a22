/**
 * The suite of archive.test.ts again, with the log appending through the worker thread's writer
 * (storage/sqlite/writer.ts), as `portcullis start` runs it: the same behaviour is expected.
 */
process.env.PORTCULLIS_TEST_AUDIT_WRITER = "worker";
await import("./archive.test.js");
