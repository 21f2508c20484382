// Crash and fault tests at CI size (test/faults.ts; `node dist/test/faults.js --kills 10` by hand): per training stage,
// kill -9 at 3 random moments with a restart after each (every checkpoint readable, the losses those of an
// uninterrupted run), and a disk that fills up while a checkpoint is written (an error naming the disk, exit 2, the
// previous checkpoint kept, an exact resume once there is space).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskFullAndResume, killAndResume, makeFixture, STAGES, type Fixture } from './faults.js';

let fixture: Fixture;
before(async () => {
  fixture = await makeFixture(mkdtempSync(join(tmpdir(), 'cw-faults-')));
});
after(() => rmSync(fixture.root, { recursive: true, force: true }));

for (const stage of STAGES) {
  test(`${stage.name}: kill -9 at random moments, resumed each time: checkpoints readable, losses exact`, { timeout: 600_000 }, async () => {
    const r = await killAndResume(stage, fixture, { kills: 3, steps: 16, seed: 5 });
    console.log(`# ${r.stage}: ${r.kills} kills in ${r.restarts} runs; checkpoint after each: ${r.checkpoints.map((c) => c ?? 'none').join(', ')}`);
    assert.ok(r.kills >= 1, `no run was killed mid-way (${r.restarts} runs)`);
  });

  test(`${stage.name}: a full disk while saving keeps the previous checkpoint, names the disk, resumes exactly`, { timeout: 600_000 }, async () => {
    const r = await diskFullAndResume(stage, fixture, { steps: 9 });
    console.log(`# ${r.stage}: ${r.message.replace(/\n/g, ' / ')}`);
    assert.equal(r.kept, 3);
  });
}
