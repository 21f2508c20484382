// One writer per store: a LOCK file created exclusively (O_EXCL), holding the writer's pid, host and command. A second
// process that opens the store for writing is refused with a message naming the holder; a lock left by a process that
// died (kill -9) is broken by the next writer on the same host. Breaking happens under a second exclusive file
// (LOCK.break), and only when the lock still holds what was judged stale, so two processes that find the same stale lock
// cannot both take the store.
// Boundary: files and pids; it knows nothing of what the store holds.
import { closeSync, existsSync, openSync, readFileSync, statSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { hostname } from 'node:os';
import { UserError } from '../util/errors.js';

export interface LockInfo {
  pid: number;
  host: string;
  since: string;
  command: string;
}

const held = new Map<string, () => void>(); // lock path -> release, for the exit hook
let hooked = false;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null; // vanished between the failed create and this read
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

// Take the lock at `path` or throw a UserError naming who holds it. Returns the release function.
export function acquireLock(path: string, command: string, what: string): () => void {
  if (held.has(path)) throw new UserError(`${what} is already open for writing in this process`, 'share the one open store between its users');
  const info: LockInfo = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
  const text = JSON.stringify(info) + '\n';
  for (let attempt = 0; attempt < 200; attempt++) {
    let fd = -1;
    try {
      fd = openSync(path, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (fd >= 0) {
      writeSync(fd, text);
      fsyncSync(fd);
      closeSync(fd);
      const release = () => {
        held.delete(path);
        if (readText(path) === text) unlinkSync(path);
      };
      held.set(path, release);
      if (!hooked) {
        hooked = true;
        process.on('exit', () => {
          for (const r of [...held.values()]) r();
        });
      }
      return release;
    }
    const seen = readText(path);
    if (seen === null) continue;
    let holder: LockInfo | null = null;
    try {
      holder = JSON.parse(seen);
    } catch {
      // being written by its creator right now, or left empty by one killed between create and write
    }
    const stale = holder ? holder.host === info.host && !alive(holder.pid) : ageMs(path) > 10_000;
    if (!stale) {
      if (!holder) {
        sleepMs(20);
        continue;
      }
      throw new UserError(
        `${what} is open for writing by another process (pid ${holder.pid} on ${holder.host}, \`${holder.command}\`, since ${holder.since})`,
        holder.host === info.host
          ? 'one process writes a store: rank in that one (several people can rank at once through one server), or wait until it ends'
          : `the lock is held from another machine; if no process there uses the store any more, delete ${path}`);
    }
    breakStale(path, seen);
  }
  throw new UserError(`could not take the lock ${path}: other processes keep taking it`, 'try again');
}

function breakStale(path: string, seen: string): void {
  const breaker = `${path}.break`;
  let fd = -1;
  try {
    fd = openSync(breaker, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if (ageMs(breaker) > 10_000) {
      try {
        unlinkSync(breaker); // its breaker died too
      } catch {
        // another process removed it first
      }
    } else sleepMs(20);
    return;
  }
  try {
    if (readText(path) === seen && existsSync(path)) unlinkSync(path);
  } finally {
    closeSync(fd);
    unlinkSync(breaker);
  }
}
