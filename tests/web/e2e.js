// Drives one lanpeer web page in Debian's headless Chromium, for tests/netns_web.rs.
//
//   node tests/web/e2e.js URL PROFILE_DIR
//
// Reads one JSON command per line on stdin ({"id": n, "do": "...", ...}) and answers each with
// one JSON line on stdout ({"id": n, "ok": true, ...} or {"id": n, "ok": false, "error": "..."}).
// The Rust test decides what to do and checks the peers; this script only works the page, the way
// a person would: by labels, visible text, Enter and buttons. Every wait is bounded.
//
// The first tab browses to URL; the action `tab` opens (or goes back to) another tab, on another
// peer's page, and every later action works the current tab.
//
// Safety: the browser browses to those pages only (every other request is aborted), with
// background networking, component updates, sync and QUIC off, and a fresh profile in PROFILE_DIR.
'use strict';

const readline = require('node:readline');
const { chromium } = require('playwright-core');

const [url, profileDir] = process.argv.slice(2);
if (!url || !profileDir) {
  console.error('usage: node e2e.js URL PROFILE_DIR');
  process.exit(2);
}
const allowed = new Set([new URL(url).origin]);
const WAIT = 10_000;

// A hard stop, whatever happens.
setTimeout(() => {
  console.error('e2e.js: overall time limit reached');
  process.exit(3);
}, 180_000).unref();

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main() {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
    viewport: { width: 1366, height: 900 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(WAIT);
  // Only the lanpeer page itself; nothing else is ever fetched.
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (allowed.has(u.origin)) return route.continue();
    console.error('e2e.js: blocked a request to ' + u.href);
    return route.abort();
  });
  const consoleErrors = [];
  const watch = (p) => {
    p.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    p.on('pageerror', (e) => consoleErrors.push(String(e)));
    return p;
  };
  // The tabs by name; `page` is the current one.
  let page = watch(context.pages()[0] || (await context.newPage()));
  const tabs = new Map([['first', page]]);

  const connected = () => page.waitForSelector('body.connected', { timeout: WAIT });

  async function open() {
    await page.goto(url, { waitUntil: 'load', timeout: WAIT });
    await connected();
  }

  const problem = (title) =>
    page.locator('article.problem').filter({ has: page.locator('h3', { hasText: new RegExp('^' + escapeRe(title) + '$') }) });
  const answerItem = (text) => page.locator('li.answer').filter({ has: page.locator('pre code', { hasText: text }) });
  const chatItem = (text) => page.locator('#chat-log li.msg').filter({ has: page.locator('.msg-text', { hasText: text }) });

  const whoami = async () => {
    // Connected is the socket's open; who we are comes with the first message (the history).
    await page.locator('#whoami').filter({ hasText: 'You are' }).waitFor({ state: 'visible', timeout: WAIT });
    return { title: await page.title(), whoami: await page.locator('#whoami').textContent(), location: page.url() };
  };

  const actions = {
    async open() {
      await open();
      return await whoami();
    },
    // Open the tab `name` on `to` (a new tab), or go back to it (no `to`).
    async tab({ name, to }) {
      if (!to) {
        page = tabs.get(name);
        if (!page) throw new Error('no tab ' + name);
        await page.bringToFront();
        return { location: page.url() };
      }
      allowed.add(new URL(to).origin);
      page = watch(await context.newPage());
      tabs.set(name, page);
      await page.goto(to, { waitUntil: 'load', timeout: WAIT });
      await connected();
      return await whoami();
    },
    // The cookies of the current tab's page: names and flags (never the values).
    async cookies() {
      const all = await context.cookies(page.url());
      return { cookies: all.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path })) };
    },
    async room_code() {
      const box = page.locator('#room-code');
      await box.waitFor({ state: 'visible' });
      return { code: await page.locator('#room-code-text').textContent(), text: await box.textContent() };
    },
    // Everyone under Online but this peer: their labels and badges.
    async people() {
      const items = page.locator('#people button.person');
      const out = [];
      for (let i = 0; i < (await items.count()); i++) {
        const b = items.nth(i);
        out.push({ id: await b.getAttribute('data-peer-id'), label: await b.locator('.name').textContent(), badges: await b.locator('.badge').allTextContents() });
      }
      const options = await page.locator('#chat-to option').allTextContents();
      return { people: out, to_options: options };
    },
    async reload() {
      await page.reload({ waitUntil: 'load', timeout: WAIT });
      await connected();
      return {};
    },
    async expect_peer({ name }) {
      const b = page.locator('#people button.person').filter({ has: page.locator('.name', { hasText: new RegExp('^' + escapeRe(name) + '$') }) });
      await b.first().waitFor({ state: 'visible' });
      return { badges: await b.first().locator('.badge').allTextContents() };
    },
    async expect_no_peer({ name }) {
      const b = page.locator('#people button.person .name', { hasText: new RegExp('^' + escapeRe(name) + '$') });
      await b.first().waitFor({ state: 'detached' });
      return {};
    },
    async chat({ text, to }) {
      if (to) {
        await page.locator('#people button.person').filter({ hasText: to }).first().click();
      } else {
        await page.locator('#chat-to').selectOption('');
      }
      const box = page.getByLabel('Message', { exact: true });
      await box.fill(text);
      await box.press('Enter');
      await page.waitForFunction(() => document.getElementById('message').value === '', null, { timeout: WAIT });
      return {};
    },
    async expect_chat({ text }) {
      const item = chatItem(text).last();
      await item.waitFor({ state: 'visible' });
      const t = item.locator('.msg-text');
      return {
        text: await t.textContent(),
        from: await item.locator('.from').textContent(),
        badges: await item.locator('.badge').allTextContents(),
        child_elements: await t.evaluate((e) => e.children.length),
      };
    },
    async expect_problem({ title }) {
      const p = problem(title);
      await p.waitFor({ state: 'visible' });
      const body = p.locator('.problem-body');
      const warning = p.locator('form.answer-form .unverified-note');
      const hasWarning = (await warning.count()) > 0;
      return {
        problem_id: await p.getAttribute('data-id'),
        body: (await body.count()) ? await body.textContent() : '',
        from: await p.locator('header .meta .from').textContent(),
        badges: await p.locator('header .badge').allTextContents(),
        quiz_note: (await p.locator('.quiz-note').count()) ? await p.locator('.quiz-note').textContent() : null,
        warning: hasWarning ? await warning.textContent() : null,
        warning_visible: hasWarning ? await warning.isVisible() : false,
        // The warning comes before the answer box, in the page's order as on the screen.
        warning_before_box: hasWarning
          ? await p.evaluate((a) => {
              const w = a.querySelector('form.answer-form .unverified-note');
              const t = a.querySelector('form.answer-form textarea');
              return !!(w && t && w.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING && w.getBoundingClientRect().bottom <= t.getBoundingClientRect().top + 1);
            })
          : false,
      };
    },
    async expect_answer({ title, text }) {
      const a = problem(title).locator('li.answer').filter({ has: page.locator('pre code', { hasText: text }) });
      await a.first().waitFor({ state: 'visible' });
      return {
        answer_id: await a.first().getAttribute('data-id'),
        code: await a.first().locator('pre > code').textContent(),
        from: await a.first().locator(':scope > .meta .from').textContent(),
      };
    },
    async answer({ title, text }) {
      const p = problem(title);
      await p.locator('form.answer-form textarea').fill(text);
      await p.getByRole('button', { name: 'Send answer' }).click();
      await page.waitForFunction((id) => document.querySelector('article.problem[data-id="' + id + '"] form.answer-form textarea').value === '', await p.getAttribute('data-id'), { timeout: WAIT });
      return {};
    },
    async feedback({ answer_text, text }) {
      const a = answerItem(answer_text).first();
      await a.locator('form.feedback-form input').fill(text);
      await a.getByRole('button', { name: 'Send feedback' }).click();
      return {};
    },
    async expect_feedback({ answer_text, text }) {
      const f = answerItem(answer_text).first().locator('li.fb').filter({ has: page.locator('.fb-text', { hasText: text }) });
      await f.first().waitFor({ state: 'visible' });
      return { from: await f.first().locator('.from').textContent() };
    },
    async post_problem({ title, body, quiz }) {
      const details = page.locator('#new-problem');
      if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
      await page.getByLabel('Title', { exact: true }).fill(title);
      await page.getByLabel('Exercise', { exact: true }).fill(body);
      const box = page.getByLabel('Answers private (quiz)');
      if (quiz) await box.check();
      else await box.uncheck();
      await page.getByRole('button', { name: 'Post exercise' }).click();
      return {};
    },
    async answer_count({ title, expect }) {
      const c = problem(title).locator('.answer-count');
      await c.filter({ hasText: expect }).waitFor({ state: 'visible' });
      return { text: await c.textContent() };
    },
    async injected() {
      return await page.evaluate(() => ({
        pwned: typeof window.pwned === 'undefined' ? null : String(window.pwned),
        scripts_in_log: document.querySelectorAll('#chat-log script, #problems script').length,
        elements_in_texts: document.querySelectorAll('.msg-text *, .problem-body *, pre code *, .fb-text *').length,
      }));
    },
    async notice() {
      const n = page.locator('#notice');
      return { visible: await n.isVisible(), text: await page.locator('#notice-text').textContent() };
    },
    async screenshot({ path, width, height, full_page }) {
      await page.setViewportSize({ width, height });
      await page.waitForTimeout(150);
      await page.screenshot({ path, fullPage: !!full_page });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      return { horizontal_overflow_px: overflow };
    },
    async scroll_chat_bottom() {
      await page.evaluate(() => {
        const l = document.getElementById('chat-log');
        l.scrollTop = l.scrollHeight;
      });
      return {};
    },
    async console_errors() {
      return { errors: consoleErrors.slice() };
    },
  };

  reply({ id: 0, ok: true, ready: true });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      reply({ id: null, ok: false, error: 'bad JSON: ' + e.message });
      continue;
    }
    if (cmd.do === 'quit') {
      reply({ id: cmd.id, ok: true });
      break;
    }
    const f = actions[cmd.do];
    if (!f) {
      reply({ id: cmd.id, ok: false, error: 'unknown action ' + cmd.do });
      continue;
    }
    const t0 = Date.now();
    try {
      reply({ ...(await f(cmd)), id: cmd.id, ok: true });
      console.error(`e2e.js: ${cmd.do} ok in ${Date.now() - t0} ms`);
    } catch (e) {
      console.error(`e2e.js: ${cmd.do} failed in ${Date.now() - t0} ms`);
      reply({ id: cmd.id, ok: false, error: String(e && e.message ? e.message : e).slice(0, 2000) });
    }
  }
  await context.close();
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

main().then(
  () => process.exit(0),
  (e) => {
    reply({ id: null, ok: false, error: 'e2e.js failed: ' + (e && e.stack ? e.stack : e) });
    process.exit(1);
  },
);
