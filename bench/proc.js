/**
 * CPU time of processes that are not ours to ask over IPC (nginx, `--workers`' processes, Redis),
 * read from /proc/<pid>/stat: one process, its children, or its whole tree.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

let clockTicks = null;
/** The kernel's clock ticks per second (USER_HZ) that /proc/<pid>/stat counts in. */
function ticksPerSecond() {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    } catch {
      clockTicks = Number.NaN;
    }
    // Linux's USER_HZ nearly everywhere, when getconf cannot say.
    if (!Number.isInteger(clockTicks) || clockTicks <= 0) clockTicks = 100;
  }
  return clockTicks;
}

/** utime + stime of a process (clock ticks) and its parent pid, from the text of /proc/<pid>/stat. */
export function procStat(text) {
  // The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
}

function readStat(pid) {
  try {
    return procStat(readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return null;
  }
}

/** CPU µs a process has used so far; 0 when it is gone. */
export function pidCpu(pid) {
  const stat = readStat(pid);
  return stat === null ? 0 : (stat.ticks * 1e6) / ticksPerSecond();
}

/** Every process's parent, now. */
function parents() {
  const out = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(name);
    if (stat !== null) out.set(Number(name), stat.ppid);
  }
  return out;
}

/** The children of `pid`, now. */
export function childrenOf(pid) {
  const out = [];
  for (const [child, parent] of parents()) if (parent === pid) out.push(child);
  return out;
}

/** `pid` and every descendant process of it, now. */
export function processTree(pid) {
  const all = parents();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of all) if (parent === tree[i]) tree.push(child);
  return tree;
}

/** CPU µs used so far by `pid` and its descendants, by pid (so that a process's share is taken once). */
export function treeCpu(pid) {
  const out = new Map();
  for (const p of processTree(pid)) {
    const stat = readStat(p);
    if (stat !== null) out.set(p, (stat.ticks * 1e6) / ticksPerSecond());
  }
  return out;
}

/** CPU µs between two treeCpu snapshots (processes present in both). */
export function cpuBetween(before, after) {
  let us = 0;
  for (const [pid, t] of after) if (before.has(pid)) us += t - before.get(pid);
  return us;
}
