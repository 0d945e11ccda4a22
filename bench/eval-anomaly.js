/**
 * The anomaly evaluation (issue 15): `npm run eval:anomaly` (builds first, then runs this file).
 *
 *   node bench/eval-anomaly.js                   two simulated weeks, 40 honest keys, every attack;
 *                                                writes ANOMALY-EVAL.md at the repository root
 *   node bench/eval-anomaly.js --json            also prints the results as JSON (one line, stdout)
 *   node bench/eval-anomaly.js --seed N          another reproducible run (default 20261206)
 *   node bench/eval-anomaly.js --days N --keys N --scenarios a,b   a shorter or smaller run
 *   node bench/eval-anomaly.js --no-write        does not write the report (--out FILE: elsewhere)
 *   node bench/eval-anomaly.js --approve-holds   what-if: a careless treasury approves every held
 *                                                withdrawal a minute after it is held
 *
 * Honest bots and seeded attacks go through the real request lifecycle with a fake clock
 * (eval-sim.js); the behaviour engine is reached through eval-behaviour.js. The targets are
 * reported, not asserted: the exit code is 1 only when the run itself failed. Progress goes to stderr.
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { DEFAULTS, SCENARIOS, runEvaluation } from "./eval-sim.js";
import { table } from "./stats.js";

const REPORT = fileURLToPath(new URL("../ANOMALY-EVAL.md", import.meta.url));

function parseArgs(argv) {
  const options = { seed: DEFAULTS.seed, days: DEFAULTS.days, keys: DEFAULTS.keys, scenarios: DEFAULTS.scenarios, json: false, write: true, out: REPORT, approveHolds: false };
  const int = (flag, value) => {
    if (value === undefined || !/^[0-9]{1,10}$/.test(value)) throw new TypeError(`${flag}: a non-negative integer`);
    return Number(value);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case "--json":
        options.json = true;
        break;
      case "--approve-holds":
        options.approveHolds = true;
        break;
      case "--no-write":
        options.write = false;
        break;
      case "--seed":
        options.seed = int(arg, argv[++i]);
        break;
      case "--days":
        options.days = int(arg, argv[++i]);
        break;
      case "--keys":
        options.keys = int(arg, argv[++i]);
        break;
      case "--scenarios": {
        const value = argv[++i] ?? "";
        options.scenarios = value.split(",").filter((s) => s !== "");
        if (options.scenarios.length === 0) throw new TypeError(`--scenarios: a comma-separated list of ${SCENARIOS.join(", ")}`);
        break;
      }
      case "--out":
        options.out = argv[++i] ?? "";
        if (options.out === "") throw new TypeError("--out: a file name");
        break;
      default:
        throw new TypeError(`unknown argument ${arg}`);
    }
  }
  return options;
}

const usd = (n) => `${Math.round(n).toLocaleString("en-US")}`;
const pct = (x) => `${(x * 100).toFixed(3)} %`;
const yes = (b) => (b ? "yes" : "**no**");

/** The report, in Markdown. */
export function renderReport(results) {
  const { setup, scenarios, honest, runtime } = results;
  const lines = [];
  lines.push("# Anomaly evaluation");
  lines.push("");
  lines.push(
    "Written by `npm run eval:anomaly` (bench/eval-anomaly.js; the simulation is bench/eval-sim.js, the behaviour engine is reached " +
      "through bench/eval-behaviour.js). Honest bots and seeded attacks go through the real request lifecycle of a core built in " +
      "process — Binance-dialect HMAC signatures, replay protection, the default limits and shields, stage 10 (the policy service " +
      "and the hold service under the demo's withdrawal policy), the audit log — with a fake clock, into an in-memory venue that " +
      "records what was handed on. The behaviour engine is settled after every simulated minute and after each request of an attack.",
  );
  lines.push("");
  lines.push(`Behaviour engine: **${setup.engine ? "present" : "absent (core.behaviour is not wired yet: nothing can be detected)"}**.`);
  lines.push("");
  lines.push("## Setup");
  lines.push("");
  lines.push(
    table(
      ["setting", "value"],
      [
        ["seed", String(setup.seed)],
        ["held withdrawals", setup.approveHolds ? "**approved** by two approvers a minute after being held (what-if: --approve-holds)" : "never approved (nobody approves an attacker's hold)"],
        ["simulated period", `${setup.days} days from ${setup.start} (attacks in the second half)`],
        ["honest keys", `${setup.honestKeys} in ${setup.accounts} accounts (${Object.entries(setup.kinds).map(([k, n]) => `${n} ${k}`).join(", ")})`],
        ["victim-only keys", `${setup.dormantKeys} dormant key (created at the start, never used by its owner)`],
        ["requests", `${setup.requests.total.toLocaleString("en-US")} (${setup.requests.honest.toLocaleString("en-US")} honest, ${setup.requests.malicious.toLocaleString("en-US")} malicious)`],
        ["symbols (24 h volume, USDT)", Object.entries(setup.symbols).map(([s, v]) => `${s} ${usd(v.volume)}`).join(", ")],
        ["limits", setup.limits.join(", ")],
        [
          "run time",
          `${runtime.seconds} s wall clock, ${runtime.cpuSeconds} s of CPU (${runtime.requestsPerSecond.toLocaleString("en-US")} requests/s), mean load average ${runtime.loadAverage} during the run (the machine may be shared), on ${cpuLine()}`,
        ],
      ],
    ),
  );
  lines.push("");
  lines.push(
    "Honest bots: market makers (limit quotes and cancels on one liquid pair, a request every ~20 s, around the clock), " +
      "arbitrageurs (an account read every ~minute, now and then two market orders across pairs), periodic buyers (50-150 USDT of BTC " +
      "every hour, a daily account read, a weekly 200-800 USDT withdrawal to a saved address), portfolio readers (account and open " +
      "orders during their ten working hours), and bots whose cloud host moves two or three times (a small quote or its cancel every ~90 s; half the moves within the /24, half to a new /24).",
  );
  lines.push("");
  lines.push("## Attacks");
  lines.push("");
  lines.push(
    "First action: the earliest response of any Portcullis control to the attacker — a behaviour action (alert, step-up, throttle, " +
      "suspend, revoke) on a key the attack uses, or a refusal of an attacker's request by a control (shield block or ban, limit, " +
      "guardrail, policy block), or stage 10 holding an attacker's withdrawal for approval. A refusal for a bad credential is not an " +
      "action. *Detected* means the behaviour engine acted. Requests and achievements are counted up to the first action (the " +
      "requests that got through before it). Target: acted on, no attacker withdrawal released, and at most 20 orders or 60 s before the first action.",
  );
  lines.push("");
  lines.push(
    table(
      ["scenario", "detected", "first action (control)", "s to it", "requests before", "orders before", "notional before", "withdrawals released", "target met"],
      scenarios.map((s) => [
        s.name,
        s.detected ? "yes" : "not detected",
        s.firstAction === null ? "none" : `${s.firstAction.what} (${s.firstAction.control})`,
        s.firstAction === null ? "—" : s.firstAction.seconds.toFixed(1),
        String(s.beforeFirstAction.requests),
        String(s.beforeFirstAction.orders),
        usd(s.beforeFirstAction.notional),
        String(s.total.withdrawalsReleased),
        s.target.met ? "yes" : `**no** (${s.target.reasons.join("; ")})`,
      ]),
    ),
  );
  lines.push("");
  lines.push("Each attack in full (ground truth: every request of the scenario is malicious):");
  lines.push("");
  lines.push(
    table(
      ["scenario", "what", "started", "keys", "requests", "orders forwarded / held / sent", "notional forwarded", "withdrawals held / sent", "refused (code × n)", "behaviour actions", "max score (before the first action)"],
      scenarios.map((s) => [
        s.name,
        s.description,
        s.start,
        String(s.keys),
        String(s.total.requests),
        `${s.total.orders} / ${s.total.ordersHeld} / ${s.total.ordersSent}`,
        usd(s.total.notional),
        `${s.total.withdrawalsHeld} / ${s.total.withdrawalsSent}`,
        codes(s.total.refused),
        s.behaviourActions.length === 0 ? "none" : countBy(s.behaviourActions.map((a) => a.action)),
        s.maxScore === null ? "—" : `${s.maxScore} (${s.maxScoreBeforeAction ?? "—"})`,
      ]),
    ),
  );
  lines.push("");
  const notes = notesOn(results);
  if (notes.length > 0) {
    lines.push("Notes on this run:");
    lines.push("");
    for (const note of notes) lines.push(`- ${note}`);
    lines.push("");
  }
  lines.push("## Honest traffic");
  lines.push("");
  lines.push(
    "Key-days: each honest key's simulated days, up to the start of an attack that uses it (actions on a victim's key after that " +
      "are the attack's). A key-day counts once per kind of action taken on the key that day. Targets: false suspensions (suspend " +
      "or revoke) below 0.1 % of honest key-days, false throttles below 1 %.",
  );
  lines.push("");
  lines.push(
    table(
      ["key-days", "requests", "alerts", "step-ups", "throttles", "suspensions", "suspensions / key-day", "throttles / key-day", "targets met"],
      [
        [
          String(honest.keyDays),
          honest.requests.toLocaleString("en-US"),
          String(honest.keyDaysWith.alert),
          String(honest.keyDaysWith["step-up"]),
          String(honest.keyDaysWith.throttle),
          String(honest.keyDaysWith.suspend + honest.keyDaysWith.revoke),
          pct(honest.rates.suspend),
          pct(honest.rates.throttle),
          `suspensions ${yes(honest.target.suspensions.met)}, throttles ${yes(honest.target.throttles.met)}`,
        ],
      ],
    ),
  );
  lines.push("");
  lines.push(
    `Honest requests refused: ${codes(honest.refused)}. Honest withdrawals: ${honest.withdrawals.sent} sent, ${honest.withdrawals.forwarded} released at once, ` +
      `${honest.withdrawals.held} held. Address moves of the moving bots: ${honest.moves}.`,
  );
  lines.push("");
  if (honest.byKind !== undefined) {
    lines.push("Honest key-days with a false action, by kind of bot:");
    lines.push("");
    lines.push(
      table(
        ["bot", "keys", "alerts", "step-ups", "throttles", "suspensions"],
        Object.entries(honest.byKind).map(([kind, k]) => [kind, String(k.keys), String(k.alert), String(k["step-up"]), String(k.throttle), String(k.suspend + k.revoke)]),
      ),
    );
    lines.push("");
  }
  const sc = honest.scores;
  lines.push(
    sc.count === 0
      ? "Honest scores: none reported (no behaviour engine)."
      : `Honest scores (${sc.count.toLocaleString("en-US")} scored events, whole points): median ${sc.p50}, p99 ${sc.p99}, p99.9 ${sc.p999}, max ${sc.max}.`,
  );
  lines.push("");
  return `${lines.join("\n")}\n`;
}

/** What a reader should know of this run's figures, from the figures themselves. */
function notesOn({ setup, scenarios }) {
  const notes = [];
  if (!setup.engine) {
    notes.push("No behaviour engine: the only controls that can act are the pipeline's (shields, limits, guardrails) and stage 10 (withdrawals to a new destination or over 1,000 USDT are held).");
  }
  const stuffing = scenarios.find((s) => s.name === "credential-stuffing");
  if (stuffing !== undefined && stuffing.firstAction?.control !== "shield") {
    notes.push(
      "Credential stuffing: the shield's failure blocks count per address and per key-and-address (30 a minute each); spread over 400 addresses, " +
        "five attempts each, the attack stays below both, so a key's failures across addresses are the behaviour engine's to see.",
    );
  }
  const released = scenarios.filter((s) => s.total.withdrawalsReleased > 0);
  if (released.length > 0 && setup.approveHolds) {
    notes.push(`With every hold approved (--approve-holds), attacker withdrawals were released in: ${released.map((s) => s.name).join(", ")}.`);
  }
  return notes;
}

function codes(refused) {
  const entries = Object.entries(refused);
  return entries.length === 0 ? "none" : entries.map(([code, n]) => `${code} × ${n}`).join(", ");
}

function countBy(list) {
  const counts = {};
  for (const x of list) counts[x] = (counts[x] ?? 0) + 1;
  return Object.entries(counts)
    .map(([k, n]) => `${k} × ${n}`)
    .join(", ");
}

function cpuLine() {
  const list = cpus();
  return `${availableParallelism()} × ${list[0]?.model.trim() ?? "unknown CPU"}, Node ${process.version}`;
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const results = await runEvaluation(options, (line) => process.stderr.write(`eval: ${line}\n`));
  if (options.write) {
    writeFileSync(options.out, renderReport(results));
    process.stderr.write(`eval: report written to ${options.out} (${results.runtime.seconds} s)\n`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify(results)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`eval: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
