// The web page in a real browser: Debian's headless Chromium driven by playwright-core. Two turns of chat (each answer
// equal to the library's for the same seed and settings, the second sent with the first in its history), the lottery
// of a token (the candidates the API reports, the cut ones marked), the stop button (the server's generation ends),
// side by side (each column the library's answer with the shared seed), ranking (the name asked once and kept, K answers
// ordered by keys, by dragging with a tie, by a typed order; undo and skip; each record read back from the store's
// rankings.jsonl), and a run's curves growing live, with its eval table. Screenshots go to .tmp/serve-browser/ for a
// person to look at; their paths are printed.
// Without /usr/bin/chromium the test skips and says why, except in CI (CI=true), where it fails: .ci/run installs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page, type Request } from 'playwright-core';
import { chatStopTokens } from '../src/generate/index.js';
import type { Message } from '../src/tokenizer/index.js';
import { PreferenceStore, RANKINGS_FILE } from '../src/feedback/index.js';
import { libraryChat, rankItems, serve, served, tempDir } from './serve-fixture.js';

// the page's own globals, for the functions that run inside it (page.waitForFunction, page.evaluate)
declare const document: any;

const CHROMIUM = '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
const skip = missing && !process.env.CI ? `no browser at ${CHROMIUM}: apt-get install -y chromium fonts-noto-cjk (CI installs them)` : false;
const SHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.tmp', 'serve-browser');

test('the page in Chromium: chat, the lottery, stop, side by side, ranking, live run curves', { skip, timeout: 240_000 }, async () => {
  const tmp = tempDir('chatwright-browser-');
  const runs = join(tmp.dir, 'runs');
  const lines = (n: number, from: number, f: (s: number) => object) => Array.from({ length: n }, (_, i) => JSON.stringify(f(from + i)) + '\n').join('');
  mkdirSync(join(runs, 'poems', 'base'), { recursive: true });
  mkdirSync(join(runs, 'poems', 'sft'), { recursive: true });
  writeFileSync(join(runs, 'poems', 'base', 'metrics.jsonl'), lines(60, 1, (s) => ({ step: s, loss: 6 * Math.exp(-s / 20) + 2, tokPerSec: 12000 })) +
    lines(1, 60, (s) => ({ step: s, valLoss: 2.6 })));
  writeFileSync(join(runs, 'poems', 'sft', 'metrics.jsonl'), lines(30, 1, (s) => ({ step: s, loss: 2 * Math.exp(-s / 10) + 1 })));
  writeFileSync(join(runs, 'poems', 'sft', 'eval.json'), JSON.stringify({ models: [
    { name: 'base', dir: 'runs/poems/base', metrics: { heldoutLoss: 3.2, poemForm: 0.05, author: 0, glossF1: 0.1, counts: { heldout: 20, poemForm: 10, author: 10, gloss: 10 } } },
    { name: 'sft', dir: 'runs/poems/sft', metrics: { heldoutLoss: 1.9, poemForm: 0.6, author: 0.3, glossF1: 0.4, counts: { heldout: 20, poemForm: 10, author: 10, gloss: 10 } } },
  ] }));
  const base = served('base', 71), sft = served('sft', 72);
  const feedback = join(tmp.dir, 'feedback');
  const store = PreferenceStore.open(feedback);
  const items = rankItems(3);
  store.addItems(items);
  const srv = await serve({ models: [sft, base], runsDir: runs, feedback: { store } });
  mkdirSync(SHOTS, { recursive: true });
  const shot = async (page: Page, name: string, fullPage = false) => {
    const path = join(SHOTS, name);
    await page.screenshot({ path, fullPage });
    console.log(`# screenshot: ${path}`);
  };
  const ctx = await chromium.launchPersistentContext(join(tmp.dir, 'profile'), {
    executablePath: CHROMIUM, viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    page.setDefaultTimeout(30_000);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const sent: Request[] = [];
    page.on('request', (r) => r.url().endsWith('/v1/chat/completions') && sent.push(r));
    await page.goto(srv.url);
    await page.waitForFunction(() => document.getElementById('chat-model').options.length === 2);
    assert.ok(await page.evaluate(() => document.fonts.check('16px "Noto Sans CJK SC"', '春')), 'a CJK font is installed (fonts-noto-cjk)');

    // ---- chat: two turns, each the library's answer for the same settings
    await page.selectOption('#chat-model', 'sft');
    await page.fill('#chat-seed', '11');
    await page.fill('#chat-max-tokens', '40');
    await page.fill('#chat-top-k', '5');
    const o = { temperature: 0.8, topP: 0.95, topK: 5, minP: 0, seed: 11, maxNewTokens: 40 };
    const turn = async (text: string, n: number) => {
      await page.fill('#chat-input', text);
      await page.press('#chat-input', 'Enter');
      await page.waitForFunction((k) => document.querySelectorAll('.msg.assistant').length === k && document.getElementById('chat-stop').hidden, n);
      return page.locator('.msg.assistant .body').nth(n - 1).textContent();
    };
    const history: Message[] = [{ role: 'user', content: '春眠不觉晓' }];
    const a1 = await turn('春眠不觉晓', 1);
    const want1 = libraryChat(sft, history, o).text;
    assert.equal(a1, want1);
    history.push({ role: 'assistant', content: want1 }, { role: 'user', content: 'and then?' });
    const a2 = await turn('and then?', 2);
    assert.equal(a2, libraryChat(sft, history, o).text);
    assert.deepEqual(JSON.parse(sent[1].postData()!).messages, history, 'the second turn carries the first');

    // ---- the lottery of the second answer's first token: the API's candidates, in order, the cut ones marked
    await page.locator('.msg.assistant').nth(1).locator('.tok').first().click();
    await page.waitForSelector('#lottery table.cands');
    const shown = await page.locator('#lottery table.cands td.tok').allTextContents();
    const api = await (await fetch(`${srv.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'sft', messages: history, seed: 11, max_tokens: 1, temperature: 0.8, top_p: 0.95, top_k: 5, min_p: 0, explain: 10 }),
    })).json() as { choices: { explain: { id: number; candidates: { token: string; cut: string | null }[] }[] }[] };
    const cands = api.choices[0].explain[0].candidates;
    const label = (t: string) => (/^<[0-9a-f]{2}( [0-9a-f]{2})*>$/.test(t) ? t : JSON.stringify(t));
    assert.deepEqual(shown, cands.map((c) => label(c.token)));
    assert.equal(await page.locator('#lottery tr.chosen').count(), 1);
    assert.equal(await page.locator('#lottery tr.cut').count(), cands.filter((c) => c.cut).length);
    assert.ok(cands.slice(5).every((c) => c.cut === 'top-k'), 'top-k 5 cut the 6th candidate on');
    await shot(page, 'chat-lottery.png');

    // ---- stop: a long answer (stop tokens banned through the request, each decode step slowed) ended by the button
    const forward = sft.model.forwardCached.bind(sft.model);
    sft.model.forwardCached = (ids, B, Tq, cache, opt) => {
      const until = Date.now() + 10;
      while (Date.now() < until) { /* a slower model */ }
      return forward(ids, B, Tq, cache, opt);
    };
    const ban = Object.fromEntries(chatStopTokens(sft.tokenizer).map((id) => [id, -100]));
    await page.route('**/v1/chat/completions', (r) => r.continue({ postData: JSON.stringify({ ...JSON.parse(r.request().postData()!), logit_bias: ban }) }));
    await page.fill('#chat-max-tokens', '');
    await page.fill('#chat-input', 'tell me a long story');
    await page.press('#chat-input', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 3 && document.querySelectorAll('.msg.assistant')[2].querySelectorAll('.tok').length >= 3);
    const stepsAtStop = sft.batcher.stats.steps;
    await page.click('#chat-stop');
    await page.waitForFunction(() => /finish: stopped/.test(document.getElementById('chat-status')!.textContent!));
    for (let t = 0; t < 100 && sft.batcher.stats.running > 0; t++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(sft.batcher.stats.running, 0, 'the server stopped generating');
    assert.ok(sft.batcher.stats.steps - stepsAtStop < 30, `${sft.batcher.stats.steps - stepsAtStop} steps after the stop; the answer could have run 200`);
    sft.model.forwardCached = forward;
    await page.unroute('**/v1/chat/completions');

    // ---- side by side: both models, the same seed, each the library's answer
    await page.goto(`${srv.url}/#compare`);
    await page.waitForSelector('#cmp-models input');
    await page.fill('#cmp-prompt', '写一首诗');
    await page.fill('#cmp-max-tokens', '30');
    await page.click('#cmp-run');
    await page.waitForFunction(() => document.querySelectorAll('.column.done').length === 2);
    for (const sm of [sft, base]) {
      const text = await page.locator(`.column[data-model="${sm.id}"] .answer`).textContent();
      assert.equal(text, libraryChat(sm, [{ role: 'user', content: '写一首诗' }], { temperature: 0.7, seed: 1, maxNewTokens: 30 }).text, sm.id);
    }
    await shot(page, 'side-by-side.png');

    // ---- ranking: the name once; keys, drag and a tie, a typed order; undo and skip; each record in the store's file
    const records = () => readFileSync(join(feedback, RANKINGS_FILE), 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
    const statusIs = (re: RegExp) => page.waitForFunction((src) => new RegExp(src).test(document.getElementById('rank-status').textContent), re.source);
    const shownItem = (i: number) => page.waitForFunction((text) => document.getElementById('rank-prompt').textContent.includes(text), items[i].prompt[0].content);
    await page.goto(`${srv.url}/#rank`);
    await page.waitForSelector('#rank-name-form:not([hidden])');
    await page.fill('#rank-name', 'simulated person');
    await page.press('#rank-name', 'Enter');
    await page.waitForFunction(() => /reserved for the simulated labeller/.test(document.getElementById('rank-name-error').textContent));
    await page.fill('#rank-name', 'Ada 李');
    await page.press('#rank-name', 'Enter');
    await shownItem(0);
    assert.equal(await page.locator('#rank-unplaced .card').count(), 4);
    assert.equal(await page.locator('#rank-who-name').textContent(), 'Ada 李');
    await page.click('#rank-prompt'); // the focus off the name field, onto the page
    for (const k of ['3', '1', '=', '2']) await page.keyboard.press(k);
    assert.equal(await page.inputValue('#rank-order'), '3 1=2');
    assert.ok(await page.locator('#rank-save').isDisabled(), 'not all placed: nothing to save yet');
    await page.keyboard.press('4');
    assert.deepEqual(await page.locator('#rank-ordered .card .num').allTextContents(), ['3', '1', '2', '4']);
    assert.deepEqual(await page.locator('#rank-ordered .card .rank').allTextContents(), ['rank 1', 'rank 2, tied', 'rank 2, tied', 'rank 3']);
    await page.keyboard.press('Enter');
    await statusIs(/saved: 3 > 1 = 2 > 4/);
    let recs = records();
    assert.equal(recs.length, 1);
    assert.deepEqual([recs[0].item, recs[0].ranking, recs[0].annotator, recs[0].verdict], [items[0].id, [2, [0, 1], 3], 'Ada 李', 'ranked']);

    // the second item by dragging: 2 first, then 4 after it, 1 before both, 3 at the end; then 4 tied with 2
    await shownItem(1);
    const card = (n: number) => page.locator(`.card[data-answer="${n - 1}"]`);
    // a drop on the upper half of a card puts the answer before it, on the lower half after it
    const dragOnto = async (n: number, onto: number, half: 'upper' | 'lower') => {
      const box = (await card(onto).boundingBox())!;
      await card(n).dragTo(card(onto), { targetPosition: { x: 20, y: half === 'upper' ? 4 : box.height - 4 } });
    };
    await card(2).dragTo(page.locator('#rank-ordered'));
    await dragOnto(4, 2, 'lower');
    await dragOnto(1, 2, 'upper');
    await dragOnto(3, 4, 'lower');
    assert.equal(await page.inputValue('#rank-order'), '1 2 4 3');
    await card(4).locator('button.tie').click();
    assert.equal(await page.inputValue('#rank-order'), '1 2=4 3');
    assert.equal(await page.locator('#rank-unplaced .card').count(), 0);
    await page.waitForFunction(() => /you: 1 · all: 1 of 3 done, 2 to go/.test(document.getElementById('rank-counts').textContent));
    await shot(page, 'ranking.png');
    await page.click('#rank-save');
    await statusIs(/saved: 1 > 2 = 4 > 3/);
    recs = records();
    assert.deepEqual([recs[1].item, recs[1].ranking], [items[1].id, [0, [1, 3], 2]]);

    // the third by typing: an incomplete order is refused on the page (nothing written), the whole one saved; undone
    // with u (the item comes back with its order), then skipped with s
    await shownItem(2);
    await page.fill('#rank-order', '2 1 4');
    await page.press('#rank-order', 'Enter');
    await statusIs(/not saved: answer 3 not placed yet/);
    assert.equal(records().length, 2);
    await page.fill('#rank-order', '2 1 4 3');
    await page.press('#rank-order', 'Enter');
    await statusIs(/saved: 2 > 1 > 4 > 3/);
    await page.waitForSelector('#rank-empty:not([hidden])');
    await page.click('#rank-counts');
    await page.keyboard.press('u');
    await statusIs(/undone: 2 > 1 > 4 > 3; here it is again/);
    await shownItem(2);
    assert.equal(await page.inputValue('#rank-order'), '2 1 4 3', 'the undone order is back to edit');
    await page.click('#rank-prompt');
    await page.keyboard.press('s');
    await statusIs(/saved: skipped/);
    recs = records();
    assert.deepEqual(recs.slice(2).map((r) => [r.kind, r.verdict ?? r.undoes]), [['rank', 'ranked'], ['undo', 3], ['rank', 'skipped']]);
    await page.waitForFunction(() => /you: 3 · all: 2 of 3 done, 1 to go/.test(document.getElementById('rank-counts').textContent));
    // the name is kept: a reload does not ask again
    await page.reload();
    await page.waitForSelector('#rank-main:not([hidden])');
    assert.equal(await page.locator('#rank-who-name').textContent(), 'Ada 李');
    assert.ok(await page.locator('#rank-name-form').isHidden());

    // ---- runs: curves of each stage, the eval table, and new records drawn as they arrive
    await page.goto(`${srv.url}/#runs`);
    await page.waitForSelector('figure.chart[data-stage="sft"] polyline');
    const points = await page.locator('figure.chart[data-stage="base"] polyline').getAttribute('points');
    assert.equal(points!.trim().split(/\s+/).length, 60);
    assert.equal(await page.locator('figure.chart[data-stage="base"] circle').count(), 1);
    assert.match(await page.locator('.eval table').textContent() ?? '', /held-out SFT loss \(20\).*3\.200.*1\.900/);
    appendFileSync(join(runs, 'poems', 'base', 'metrics.jsonl'), lines(20, 61, (s) => ({ step: s, loss: 6 * Math.exp(-s / 20) + 2 })));
    await page.waitForFunction(() => /step 80 loss/.test(document.querySelector('figure.chart[data-stage="base"] figcaption')!.textContent!));
    await shot(page, 'runs.png', true);
    assert.deepEqual(errors, [], 'no errors in the page');
  } finally {
    await ctx.close();
    await srv.close();
    store.close();
    tmp.remove();
  }
});
