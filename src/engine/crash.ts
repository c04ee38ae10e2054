// TEST-ONLY crash hook. With KVMNET_TEST_CRASH_AFTER_STEP=N in its environment, kvmnet writes
// `kvmnet-test-step N` to stderr and kills itself with SIGKILL right after it applied the Nth step
// of this process (a plan step, or the write of an intent record that comes before one). The
// crash-safety tests (test/integration/crash.test.ts) use it to stop an apply at every point and
// check that re-running the command converges. Nothing but those tests sets it; this module is the
// only place that reads it.
import { writeSync } from 'node:fs';

const ENV = 'KVMNET_TEST_CRASH_AFTER_STEP';

function target(): number | undefined {
  const v = process.env[ENV];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

const crashAfter = target();
let done = 0;

/** Marks one step as applied; under the test hook, the Nth one ends the process abruptly. */
export function stepApplied(): void {
  if (crashAfter === undefined) return;
  done++;
  if (done === crashAfter) {
    writeSync(2, `kvmnet-test-step ${done}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
