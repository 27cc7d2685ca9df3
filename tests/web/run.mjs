// Browser tests of samverkan's pages (issue 19), with playwright-core driving Debian's
// Chromium and axe-core for accessibility. Plain node, no test framework:
//
//   BASE_URL=http://127.0.0.1:18080 DEMO_PASSWORD=… IDLE_SECS=3 node tests/web/run.mjs
//
// BASE_URL      the running service (required)
// DEMO_PASSWORD the demo users' password (required)
// IDLE_SECS     the server's web idle timeout in seconds (SAMVERKAN_WEB_IDLE_SECS); without
//               it the idle checks are skipped
// SCREENSHOTS=1 writes tests/web/screenshots/{guard,police,social}.png
// CHROMIUM      the browser (default /usr/bin/chromium)
// ONLY          comma-separated flow names to run (development aid), e.g. ONLY=login,guard
//
// Every flow runs in fresh browser contexts at 360×740 and creates the records it needs,
// marked with a unique run id, so it tolerates other runs' and other flows' records in the
// same database. One line per check; the last line is "web: N passed, N failed"; the exit
// code is non-zero when any check failed. On a failed check the page's HTML and a
// screenshot go to tests/web/test-results/.

import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.BASE_URL || '').replace(/\/+$/, '');
const PASSWORD = process.env.DEMO_PASSWORD || '';
const IDLE = process.env.IDLE_SECS ? Number(process.env.IDLE_SECS) : null;
const SCREENSHOTS = process.env.SCREENSHOTS === '1';
const ONLY = (process.env.ONLY || '').split(',').map((s) => s.trim()).filter(Boolean);
const RESULTS = path.join(HERE, 'test-results');
const SHOTS = path.join(HERE, 'screenshots');
const HTTPS = BASE.startsWith('https:');
const SESSION_COOKIE = HTTPS ? '__Host-samverkan' : 'samverkan';
const VIEWPORT = { width: 360, height: 740 };
const LOCALES = { sv: 'sv-SE', en: 'en-GB' };

if (!BASE || !PASSWORD) {
  console.error('BASE_URL and DEMO_PASSWORD must be set');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// The demo world (src/demo.rs, ../shared/domain.md) and the role homes of the contract.

const HOME = {
  guard: '/situation-reports',
  outreach_worker: '/situation-reports',
  coordinator: '/situation-reports',
  police_officer: '/situation-reports',
  police_analyst: '/observations',
  social_worker: '/referrals',
  auditor: '/audit',
  admin: '/admin',
};
const USERS = {
  polis1: { role: 'police_officer', name: 'Polis Ett' },
  analytiker1: { role: 'police_analyst', name: 'Analytiker Ett' },
  vakt1: { role: 'guard', name: 'Vakt Ett' },
  vakt2: { role: 'guard', name: 'Vakt Två' },
  soc1: { role: 'social_worker', name: 'Socialsekreterare Ett' },
  falt1: { role: 'outreach_worker', name: 'Fältassistent Ett' },
  samordnare1: { role: 'coordinator', name: 'Samordnare Ett' },
  revisor1: { role: 'auditor', name: 'Revisor Ett' },
  admin1: { role: 'admin', name: 'Admin Ett' },
};
const ALL = Object.keys(USERS);
const POLICE = ['polis1', 'analytiker1'];
const CANDIDATE_PAGES = [
  '/situation-reports',
  '/observations',
  '/referrals',
  '/observations/new',
  '/situation-reports/new',
  '/referrals/new',
  '/audit',
  '/admin',
];
const CATEGORIES = [
  'drug_sale', 'drug_use', 'violence', 'threat', 'disorder', 'weapon_found', 'intoxication', 'other',
];

// One id per run: every marker and canary carries it.
const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`.toUpperCase();
const C = {
  obsNarrative: `OBSNARR-${RUN}`,
  obsPerson: `OBSPERSON-${RUN}`,
  obsNoJs: `OBSNOJS-${RUN}`,
  vakt2Narrative: `VAKT2NARR-${RUN}`,
  faltNarrative: `FALTNARR-${RUN}`,
  reportTitle: `Lägesbild ${RUN}`,
  general: `GENERAL-${RUN}`,
  onSite: `ONSITE-${RUN}`,
  policeOnly: `POLICEONLY-${RUN}`,
  hiddenTitle: `HIDDENTITLE-${RUN}`,
  hiddenBody: `HIDDENBODY-${RUN}`,
  childName: `CHILDNAME-${RUN}`,
  childAlias: `CHILDALIAS-${RUN}`,
  childDescription: `CHILDDESC-${RUN}`,
  concern: `CONCERN-${RUN}`,
  note: `SOCNOTE-${RUN}`,
  released: `RELEASED-${RUN}`,
  csrfMissing: `CSRFMISSING-${RUN}`,
  csrfForeign: `CSRFFOREIGN-${RUN}`,
  csrfOwnOther: `CSRFOTHERSESSION-${RUN}`,
  csrfValid: `CSRFVALID-${RUN}`,
  csrfCrossSite: `CSRFCROSSSITE-${RUN}`,
  csrfReport: `CSRFREPORT-${RUN}`,
  csrfReferral: `CSRFREFERRAL-${RUN}`,
};

// ---------------------------------------------------------------------------------------
// Reporting.

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
class Abort extends Error {}

function ok(name) {
  passed++;
  console.log(`ok   ${name}`);
}
function fail(name, detail) {
  failed++;
  const line = `${name}: ${detail}`;
  failures.push(line);
  console.log(`FAIL ${line}`);
}
function skip(name, why) {
  skipped++;
  console.log(`skip ${name}: ${why}`);
}
/** A check that is recorded and lets the flow go on. */
function check(name, cond, detail = 'not as expected') {
  if (cond) ok(name);
  else fail(name, detail);
  return !!cond;
}
/** A check the rest of the flow depends on: on failure the flow stops. */
function must(name, cond, detail) {
  if (!check(name, cond, detail)) throw new Abort(name);
}
/** Keeps a failing page for the person who reads the log. */
async function keep(page, name) {
  try {
    fs.mkdirSync(RESULTS, { recursive: true });
    const base = path.join(RESULTS, name.replace(/[^a-zA-Z0-9_.-]+/g, '_').slice(0, 120));
    fs.writeFileSync(`${base}.html`, await page.content());
    await page.screenshot({ path: `${base}.png`, fullPage: true });
  } catch {
    /* the page may be gone */
  }
}
/** check() that keeps the page when it fails. */
async function checkPage(page, name, cond, detail) {
  if (!check(name, cond, detail)) await keep(page, name);
  return !!cond;
}
async function mustPage(page, name, cond, detail) {
  if (!(await checkPage(page, name, cond, detail))) throw new Abort(name);
}

// ---------------------------------------------------------------------------------------
// Helpers.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pathOf = (url) => new URL(url, BASE).pathname;
const short = (s, n = 160) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Europe/Stockholm wall-clock time as a datetime-local value (YYYY-MM-DDTHH:MM). */
function stockholmLocal(date) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/Stockholm',
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(date).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}
/** The instant a datetime-local value means in Europe/Stockholm. */
function fromStockholmLocal(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || '');
  if (!m) return null;
  const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  // Stockholm is UTC+1 or UTC+2: the offset that maps back to the same wall clock.
  for (const offset of [1, 2]) {
    const t = new Date(asUtc - offset * 3600e3);
    if (stockholmLocal(t) === value.slice(0, 16)) return t;
  }
  return null;
}

let browser;
const contexts = new Set();
const cspErrors = [];

/** A fresh browser context (a phone), optionally signed in. */
async function session(user, opts = {}) {
  const lang = opts.lang || 'sv';
  const ctx = await browser.newContext({
    viewport: VIEWPORT,
    locale: LOCALES[lang],
    colorScheme: opts.scheme || 'light',
    timezoneId: 'Europe/Stockholm',
    javaScriptEnabled: opts.js !== false,
    baseURL: BASE,
    ignoreHTTPSErrors: true,
  });
  ctx.setDefaultTimeout(15000);
  contexts.add(ctx);
  const page = await ctx.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) {
      cspErrors.push(`${user || 'anonymous'} ${pathOf(page.url())}: ${short(m.text(), 200)}`);
    }
  });
  const s = { ctx, page, user, lang, scheme: opts.scheme || 'light' };
  if (user) await signIn(s, user, opts.password || PASSWORD);
  return s;
}

/**
 * Signs a flow's user in through the login form. When the form fails (the login checks
 * report that), the session is opened with a direct POST /login instead, so that the
 * flow can still test its own pages; that is counted and reported once, as a failure.
 */
const formLoginFailures = new Set();
let formLoginFallbacks = 0;
async function signIn(s, user, password) {
  const { post } = await login(s, user, password);
  if (post.status() === 303 && pathOf(s.page.url()) !== '/login') return;
  formLoginFailures.add(`${user}: POST /login ${post.status()}`);
  formLoginFallbacks++;
  const form = await s.ctx.request.get('/login');
  const csrf = /name="csrf"[^>]*value="([^"]*)"/.exec(await form.text());
  const r = await s.ctx.request.post('/login', {
    form: { username: user, password, ...(csrf ? { csrf: csrf[1] } : {}) }, maxRedirects: 0, failOnStatusCode: false,
  });
  if (r.status() !== 303) throw new Error(`${user} cannot sign in at all: POST /login ${r.status()}`);
  await s.page.goto('/');
  await s.page.waitForLoadState('load');
}
async function close(s) {
  if (!s) return;
  contexts.delete(s.ctx);
  await s.ctx.close().catch(() => {});
}
/** Runs fn with a fresh signed-in session and closes it afterwards. */
async function as(user, fn, opts = {}) {
  const s = await session(user, opts);
  try {
    return await fn(s.page, s);
  } finally {
    await close(s);
  }
}

/** Signs in through the login form; returns the POST's response (and the chain seen). */
async function login(s, user, password) {
  const { page } = s;
  const seen = [];
  const onResponse = (r) => seen.push({
    method: r.request().method(), path: pathOf(r.url()), status: r.status(),
    location: r.headers().location,
  });
  page.on('response', onResponse);
  try {
    await page.goto('/login');
    const form = page.locator('form#login');
    await form.locator('[name=username]').fill(user);
    await form.locator('[name=password]').fill(password);
    const post = await submit(page, submitButton(form), 'POST', '/login');
    await page.waitForLoadState('load');
    return { post, seen };
  } finally {
    page.off('response', onResponse);
  }
}
function submitButton(form) {
  return form.locator('button[type=submit], input[type=submit], button:not([type])').first();
}

/**
 * Clicks something that submits a form and waits for the answer: returns the response to
 * the form's request; afterwards the page shows where a redirect led (or the answer).
 */
async function submit(page, button, method, pathname) {
  // The request chain that starts with this form's request: its own answer, and the
  // last answer after its redirects (what the page then shows).
  const origin = (r) => {
    let q = r.request();
    while (q.redirectedFrom()) q = q.redirectedFrom();
    return q;
  };
  const ours = (r) => {
    const q = origin(r);
    return q.method() === method && pathOf(q.url()) === pathname && q.frame() === page.mainFrame();
  };
  const first = page.waitForResponse((r) => ours(r) && !r.request().redirectedFrom(), { timeout: 15000 });
  const last = page.waitForResponse((r) => ours(r) && !(r.status() >= 300 && r.status() < 400), { timeout: 15000 });
  first.catch(() => {}); // a failed click must not leave a rejection unhandled
  last.catch(() => {});
  await button.click();
  const resp = await first;
  await last.catch(() => {});
  await page.waitForLoadState('load');
  return resp;
}

/** The page's error messages ([role=alert]), for a failure's detail. */
async function alerts(page) {
  const t = await page.locator('[role=alert]').allInnerTexts().catch(() => []);
  return t.length ? ` — alert: "${short(t.join(' | '), 200)}"` : '';
}

/** Opens the <details> a form sits in (a person clicks its summary first). */
async function reveal(locator) {
  const closed = await locator.evaluate((el) => { const d = el.closest('details'); return !!d && !d.open; });
  if (closed) await locator.locator('xpath=ancestor::details[1]/summary').click();
}

async function visit(page, p) {
  const resp = await page.goto(p);
  await page.waitForLoadState('load');
  return resp;
}

/** Clicks the label of a radio or checkbox (how a person chooses it) and returns whether it is checked. */
async function choose(page, input) {
  const id = await input.getAttribute('id');
  let label = id ? page.locator(`label[for="${id}"]`) : null;
  if (!label || !(await label.count())) label = page.locator('label', { has: input });
  if (await label.count()) await label.first().click();
  else await input.check();
  return input.isChecked();
}

/** Fills a field by name inside a form: select, checkbox/radio or text. */
async function setField(form, name, value) {
  const el = form.locator(`[name="${name}"]`);
  const n = await el.count();
  if (!n) throw new Error(`no field ${name}`);
  const tag = await el.first().evaluate((e) => e.tagName.toLowerCase());
  const type = (await el.first().getAttribute('type')) || '';
  if (tag === 'select') {
    await el.first().selectOption(String(value));
  } else if (type === 'checkbox' || type === 'radio') {
    if (n > 1 || typeof value === 'string') {
      await form.locator(`[name="${name}"][value="${value}"]`).check();
    } else if (value) await el.first().check();
    else await el.first().uncheck();
  } else {
    await el.first().fill(String(value));
  }
}

/** The csrf value of the first form on the page that has one. */
async function csrfOf(page) {
  const el = page.locator('form input[name=csrf]').first();
  return (await el.count()) ? el.getAttribute('value') : null;
}

/** A navigation the way a person does it: a link in the page's navigation, else a reload. */
async function clickSomewhere(page, prefer = ['/observations', '/situation-reports', '/referrals']) {
  for (const href of prefer) {
    const a = page.locator(`nav a[href="${href}"], header a[href="${href}"], a[href="${href}"]`).first();
    if (await a.count() && await a.isVisible()) {
      await Promise.all([page.waitForNavigation({ timeout: 15000 }).catch(() => {}), a.click()]);
      await page.waitForLoadState('load');
      return href;
    }
  }
  await page.reload();
  await page.waitForLoadState('load');
  return 'reload';
}

const api = {
  async token(user) {
    const r = await fetch(`${BASE}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: user, password: PASSWORD }),
    });
    return r.ok ? (await r.json()).access_token : null;
  },
  async me(user) {
    const t = await api.token(user);
    if (!t) return null;
    const r = await fetch(`${BASE}/api/v1/me`, { headers: { authorization: `Bearer ${t}` } });
    return r.ok ? r.json() : null;
  },
};

// ---------------------------------------------------------------------------------------
// Page-level checks shared by the flows.

/** Security headers of one page answer. */
function headerProblems(resp, { caseData }) {
  const h = resp.headers();
  const out = [];
  const csp = h['content-security-policy'] || '';
  if (!/frame-ancestors\s+'none'/.test(csp)) out.push(`CSP without frame-ancestors 'none' (${short(csp, 120) || 'none'})`);
  if (/unsafe-inline/.test(csp)) out.push(`CSP allows 'unsafe-inline' (${short(csp, 200)})`);
  if ((h['x-frame-options'] || '').toUpperCase() !== 'DENY') out.push(`X-Frame-Options ${h['x-frame-options'] || 'missing'}`);
  if ((h['referrer-policy'] || '') !== 'no-referrer') out.push(`Referrer-Policy ${h['referrer-policy'] || 'missing'}`);
  if (caseData && !/no-store/.test(h['cache-control'] || '')) out.push(`Cache-Control ${h['cache-control'] || 'missing'}`);
  return out;
}

/** The page skeleton every page shares; signedIn adds the logout form. */
async function skeletonProblems(page, { signedIn, lang }) {
  return page.evaluate(({ signedIn, lang }) => {
    const out = [];
    const html = document.documentElement.getAttribute('lang');
    if (!['sv', 'en'].includes(html)) out.push(`html lang="${html}"`);
    if (lang && html !== lang) out.push(`html lang="${html}", expected "${lang}"`);
    if (!document.querySelector('main#main')) out.push('no main#main');
    if (!document.querySelector('a[href^="/lang/sv"]')) out.push('no a[href^="/lang/sv"]');
    if (!document.querySelector('a[href^="/lang/en"]')) out.push('no a[href^="/lang/en"]');
    if (signedIn) {
      const f = document.querySelector('form#logout');
      if (!f) out.push('no form#logout');
      else {
        if ((f.getAttribute('method') || '').toLowerCase() !== 'post' || f.getAttribute('action') !== '/logout') out.push('form#logout not POST /logout');
        if (!f.querySelector('input[type=hidden][name=csrf]')) out.push('form#logout without hidden csrf');
      }
    }
    for (const f of document.querySelectorAll('form')) {
      if ((f.getAttribute('method') || 'get').toLowerCase() === 'post' && !f.querySelector('input[type=hidden][name=csrf]')) {
        out.push(`POST form ${f.id ? `#${f.id}` : f.getAttribute('action')} without hidden csrf`);
      }
    }
    return out;
  }, { signedIn, lang });
}

/** Horizontal scrolling and touch targets at the phone width. */
async function layoutProblems(page) {
  return page.evaluate(() => {
    const out = [];
    const sw = document.documentElement.scrollWidth;
    if (sw > window.innerWidth) out.push(`scrollWidth ${sw} > ${window.innerWidth}`);
    const visible = (el) => {
      const r = el.getBoundingClientRect();
      const cs = getComputedStyle(el);
      return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'none';
    };
    const name = (el) => {
      let d = el.tagName.toLowerCase();
      if (el.id) d += `#${el.id}`;
      if (el.getAttribute('name')) d += `[name="${el.getAttribute('name')}"]`;
      if (el.getAttribute('href')) d += `[href="${el.getAttribute('href')}"]`;
      if ((el.type === 'radio' || el.type === 'checkbox' || el.tagName === 'BUTTON') && el.value) d += `[value="${el.value}"]`;
      return d;
    };
    const small = [];
    for (const el of document.querySelectorAll('button, input, select, textarea, nav a, a[href^="/lang/"]')) {
      if (el.type === 'hidden') continue;
      let target = el;
      if (el.type === 'radio' || el.type === 'checkbox') {
        // The clickable area of a choice is its label (the big buttons of the contract).
        const label = el.labels && el.labels[0];
        if (label && visible(label)) target = label;
        else if (!visible(el)) continue;
      } else if (!visible(el)) continue;
      const h = target.getBoundingClientRect().height;
      if (h < 43.5) small.push(`${name(el)} ${h.toFixed(0)}px`);
    }
    if (small.length) out.push(`touch targets under 44px: ${small.join(', ')}`);
    return out;
  });
}

/** axe-core: the serious and critical violations, summarised. */
async function axeProblems(page) {
  const r = await new AxeBuilder({ page }).analyze();
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}) ×${v.nodes.length}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}${v.id === 'color-contrast' && v.nodes[0] ? ` — ${short(v.nodes[0].failureSummary.replace(/\s+/g, ' '), 160)}` : ''}`);
}

// ---------------------------------------------------------------------------------------
// State shared by the flows (what earlier flows created).

const state = {
  referralId: null,
  pseudonyms: {},
  reached: {}, // user -> [paths that answer 200 for them]
  tmpUsers: [],
};

// ---------------------------------------------------------------------------------------
// Flow: login, role homes, language, logout.

async function flowLogin() {
  // The login page itself.
  let s = await session(null);
  try {
    const { page } = s;
    const resp = await visit(page, '/login');
    must('login: GET /login answers 200', resp && resp.status() === 200, `status ${resp && resp.status()}`);
    const form = page.locator('form#login');
    must('login: form#login is POST /login',
      (await form.count()) === 1 && (await form.getAttribute('method'))?.toLowerCase() === 'post' && (await form.getAttribute('action')) === '/login',
      'no form#login method=post action=/login');
    check('login: username, password and a submit button',
      (await form.locator('input[name=username]').count()) === 1
      && (await form.locator('input[name=password][type=password]').count()) === 1
      && (await submitButton(form).count()) === 1,
      'a field or the button is missing');
    const h = headerProblems(resp, { caseData: false });
    check('login: CSP frame-ancestors none without unsafe-inline, X-Frame-Options DENY, Referrer-Policy no-referrer', !h.length, h.join('; '));
    const sk = await skeletonProblems(page, { signedIn: false, lang: 'sv' });
    check('login: html lang sv by default (Accept-Language sv), main#main, language links, csrf in POST forms', !sk.length, sk.join('; '));

    // A wrong password: the login page again with an alert. A name that does not exist,
    // so that no demo user's throttle counter moves.
    await form.locator('[name=username]').fill(`nobody-${RUN.toLowerCase()}`);
    await form.locator('[name=password]').fill('not-the-password');
    const post = await submit(page, submitButton(form), 'POST', '/login');
    await checkPage(page, 'login: a wrong password gives the login page again with [role=alert]',
      pathOf(page.url()) === '/login' && (await page.locator('[role=alert]').count()) > 0
      && (await page.locator('form#login').count()) === 1,
      `status ${post.status()}, at ${pathOf(page.url())}, alerts ${await page.locator('[role=alert]').count()}`);
    check('login: a wrong password sets no session cookie',
      !(await s.ctx.cookies(BASE)).some((c) => c.name === SESSION_COOKIE), 'a session cookie was set');
  } finally {
    await close(s);
  }

  // English by Accept-Language.
  s = await session(null, { lang: 'en' });
  try {
    await visit(s.page, '/login');
    const lang = await s.page.getAttribute('html', 'lang');
    check('login: html lang en when the browser prefers English', lang === 'en', `lang="${lang}"`);
  } finally {
    await close(s);
  }

  // Every demo user lands on the role's home through / with 303s.
  for (const user of ALL) {
    const home = HOME[USERS[user].role];
    s = await session(null);
    try {
      const { post, seen } = await login(s, user, PASSWORD);
      const toRoot = post.status() === 303 && post.headers().location && pathOf(post.headers().location) === '/';
      const root = seen.find((r) => r.method === 'GET' && r.path === '/');
      const rootToHome = root && root.status === 303 && root.location && pathOf(root.location) === home;
      await checkPage(s.page, `login ${user}: 303 to /, / 303 to ${home}, and the page is there`,
        toRoot && rootToHome && pathOf(s.page.url()) === home,
        `POST /login ${post.status()} → ${post.headers().location}; GET / ${root ? `${root.status} → ${root.location}` : 'not seen'}; at ${pathOf(s.page.url())}`);
      const sk = await skeletonProblems(s.page, { signedIn: true, lang: 'sv' });
      check(`login ${user}: home has lang, main#main, logout form with csrf, language links`, !sk.length, sk.join('; '));
    } finally {
      await close(s);
    }
  }

  // Session cookie flags, language switch (remembered), logout.
  s = await session('vakt1');
  try {
    const { page, ctx } = s;
    const cookies = await ctx.cookies(BASE);
    const c = cookies.find((k) => k.name === SESSION_COOKIE);
    must(`cookies: a session cookie named ${SESSION_COOKIE}`, !!c, `cookies: ${cookies.map((k) => k.name).join(', ') || 'none'}`);
    check('cookies: session cookie HttpOnly', c.httpOnly === true, `httpOnly ${c.httpOnly}`);
    check('cookies: session cookie SameSite=Strict', c.sameSite === 'Strict', `sameSite ${c.sameSite}`);
    check('cookies: session cookie Path=/', c.path === '/', `path ${c.path}`);
    check(`cookies: session cookie Secure ${HTTPS ? 'on https' : 'off on plain-http localhost'}`, c.secure === HTTPS, `secure ${c.secure}`);
    check('cookies: session cookie has no Domain (host-only)', !c.domain.startsWith('.'), `domain ${c.domain}`);

    await visit(page, '/observations');
    const before = '/observations';
    await Promise.all([page.waitForNavigation().catch(() => {}), page.locator('a[href^="/lang/en"]').first().click()]);
    await page.waitForLoadState('load');
    check('language: /lang/en leads back to the same page, in English',
      pathOf(page.url()) === before && (await page.getAttribute('html', 'lang')) === 'en',
      `at ${pathOf(page.url())}, lang ${await page.getAttribute('html', 'lang')}`);
    const langCookie = (await ctx.cookies(BASE)).find((k) => k.name === 'lang');
    check('language: a remembered cookie lang=en', langCookie && langCookie.value === 'en' && langCookie.expires > Date.now() / 1000 + 86400,
      langCookie ? `value ${langCookie.value}, expires ${langCookie.expires}` : 'no cookie lang');
    await visit(page, '/observations');
    check('language: the choice outlasts Accept-Language sv on the next page', (await page.getAttribute('html', 'lang')) === 'en',
      `lang ${await page.getAttribute('html', 'lang')}`);
    await Promise.all([page.waitForNavigation().catch(() => {}), page.locator('a[href^="/lang/sv"]').first().click()]);
    await page.waitForLoadState('load');
    check('language: /lang/sv switches back (to the same page)', pathOf(page.url()) === '/observations' && (await page.getAttribute('html', 'lang')) === 'sv',
      `at ${pathOf(page.url())}, lang ${await page.getAttribute('html', 'lang')}`);

    const logout = page.locator('form#logout');
    await submit(page, submitButton(logout), 'POST', '/logout');
    await visit(page, '/situation-reports');
    await checkPage(page, 'logout: the session ends (the next page is /login)', pathOf(page.url()) === '/login', `at ${pathOf(page.url())}`);
  } finally {
    await close(s);
  }
}

// ---------------------------------------------------------------------------------------
// Flow 1: a guard files an observation and sees it.

async function fileObservation(page, { place, category, description, persons = [] }) {
  await visit(page, '/observations/new');
  const form = page.locator('form#observation');
  if (place && await form.locator('select[name=place]').count()) await form.locator('select[name=place]').selectOption(place);
  const checked = await choose(page, form.locator(`input[name=category][value="${category}"]`));
  if (description !== undefined) await form.locator('[name=description]').fill(description);
  for (const [i, p] of persons.entries()) {
    await form.locator(`[name="persons[${i}].description"]`).fill(p.description);
    if (p.year) await form.locator(`[name="persons[${i}].estimated_birth_year"]`).fill(String(p.year));
    if (p.uncertain) await choose(page, form.locator(`[name="persons[${i}].age_uncertain"]`));
  }
  const resp = await submit(page, submitButton(form), 'POST', '/observations');
  return { resp, checked };
}

async function flowGuard() {
  await as('vakt1', async (page) => {
    const resp = await visit(page, '/observations/new');
    must('guard: /observations/new answers 200', resp.status() === 200, `status ${resp.status()}`);
    const form = page.locator('form#observation');
    must('guard: form#observation is POST /observations',
      (await form.count()) === 1 && (await form.getAttribute('method'))?.toLowerCase() === 'post' && (await form.getAttribute('action')) === '/observations',
      'form#observation missing or not POST /observations');
    const place = form.locator('[name=place]');
    check('guard: one place, preselected as a hidden input (sergels-torg)',
      (await place.count()) === 1 && (await place.getAttribute('type')) === 'hidden' && (await place.getAttribute('value')) === 'sergels-torg',
      `${await place.count()} place fields, type ${await place.first().getAttribute('type').catch(() => '?')}, value ${await place.first().getAttribute('value').catch(() => '?')}`);
    const cats = await form.locator('input[type=radio][name=category]').evaluateAll((els) => els.map((e) => e.value));
    check('guard: category as radios with the eight values', CATEGORIES.every((c) => cats.includes(c)) && cats.length === CATEGORIES.length,
      `values: ${cats.join(', ')}`);
    const labelled = await form.locator('input[type=radio][name=category]').evaluateAll((els) => els.every((e) => e.labels && e.labels.length > 0));
    check('guard: every category has a label (the big button)', labelled, 'a category radio without a label');
    const at = form.locator('input[name=observed_at]');
    const atType = await at.getAttribute('type');
    const atValue = await at.inputValue().catch(() => '');
    const atTime = fromStockholmLocal(atValue);
    check('guard: observed_at is datetime-local defaulting to now in Europe/Stockholm',
      atType === 'datetime-local' && atTime && Math.abs(atTime - Date.now()) < 10 * 60e3,
      `type ${atType}, value "${atValue}", now there ${stockholmLocal(new Date())}`);
    check('guard: description textarea and three person slots',
      (await form.locator('textarea[name=description]').count()) === 1
      && (await form.locator('[name="persons[2].description"]').count()) === 1
      && (await form.locator('[name="persons[2].estimated_birth_year"]').count()) === 1
      && (await form.locator('input[type=checkbox][name="persons[0].age_uncertain"]').count()) === 1,
      'a field is missing');

    const { resp: post, checked } = await fileObservation(page, {
      category: 'drug_sale',
      description: `Two men selling by the metro stairs ${C.obsNarrative}`,
      persons: [{ description: `young man, red jacket ${C.obsPerson}`, year: 2008, uncertain: true }],
    });
    check('guard: clicking the category label checks it', checked, 'the radio stayed unchecked');
    await mustPage(page, 'guard: filing answers 303 to /observations',
      post.status() === 303 && pathOf(post.headers().location || '') === '/observations' && pathOf(page.url()) === '/observations',
      `status ${post.status()} → ${post.headers().location}, at ${pathOf(page.url())}${await alerts(page)}`);
    const mine = page.locator('article.record.observation', { hasText: C.obsNarrative });
    await checkPage(page, 'guard: the observation is on /observations with its description', (await mine.count()) === 1,
      `${await mine.count()} articles with the marker`);
    await checkPage(page, 'guard: own observation shows its person', (await mine.filter({ hasText: C.obsPerson }).count()) === 1,
      'the person is not shown');
  });

  // Bad input: the form comes back filled in, with the error in the user's language.
  const bad = {};
  for (const lang of ['sv', 'en']) {
    await as('vakt1', async (page) => {
      await visit(page, '/observations/new');
      const form = page.locator('form#observation');
      await choose(page, form.locator('input[name=category][value="violence"]'));
      await form.locator('[name=description]').fill(`Bad birth year ${RUN}`);
      await form.locator('[name="persons[0].description"]').fill(`someone ${RUN}`);
      await form.locator('[name="persons[0].estimated_birth_year"]').fill('1800');
      const r = await submit(page, submitButton(form), 'POST', '/observations');
      const back = page.locator('form#observation');
      bad[lang] = {
        status: r.status(),
        alert: (await page.locator('[role=alert]').allInnerTexts()).join(' | '),
        kept: (await back.count()) === 1
          && (await back.locator('[name=description]').inputValue()) === `Bad birth year ${RUN}`
          && (await back.locator('[name="persons[0].description"]').inputValue()) === `someone ${RUN}`
          && (await back.locator('[name="persons[0].estimated_birth_year"]').inputValue()) === '1800'
          && (await back.locator('input[name=category][value="violence"]').isChecked()),
      };
      await checkPage(page, `guard (${lang}): bad input (birth year 1800) comes back as a 400, filled in, with an alert`,
        bad[lang].status === 400 && bad[lang].kept && bad[lang].alert.length > 0,
        `status ${bad[lang].status}, filled in ${bad[lang].kept}, alert "${short(bad[lang].alert)}"`);
    }, { lang });
  }
  check('guard: the error message is in the user\'s language (sv and en differ)',
    bad.sv && bad.en && bad.sv.alert && bad.sv.alert !== bad.en.alert,
    `sv "${short(bad.sv?.alert || '')}", en "${short(bad.en?.alert || '')}"`);

  // The same without JavaScript (the pages work without it).
  await as('vakt1', async (page) => {
    const { resp } = await fileObservation(page, { category: 'disorder', description: `No script ${C.obsNoJs}` });
    await checkPage(page, 'guard without JavaScript: files an observation and sees it',
      resp.status() === 303 && (await page.locator('article.record.observation', { hasText: C.obsNoJs }).count()) === 1,
      `status ${resp.status()}, at ${pathOf(page.url())}`);
  }, { js: false });

  // Records whose narrative other users must not see (the secrecy sweep's canaries).
  await as('vakt2', async (page) => {
    const { resp } = await fileObservation(page, { category: 'threat', description: `At Hässelby ${C.vakt2Narrative}` });
    check('guard vakt2: files an observation at Hässelby torg', resp.status() === 303, `status ${resp.status()}`);
  });
  await as('falt1', async (page) => {
    const r = await visit(page, '/observations/new');
    if (r.status() !== 200) return skip('outreach falt1 files an observation', `/observations/new answers ${r.status()}`);
    const { resp } = await fileObservation(page, { category: 'drug_use', description: `Outreach ${C.faltNarrative}` });
    check('outreach falt1: files an observation at Sergels torg', resp.status() === 303, `status ${resp.status()}`);
  });
}

// ---------------------------------------------------------------------------------------
// Flow 2: the police post a lägesbild with a preview "as seen by".

async function fillReport(page, { place, title, bodies, validUntil }) {
  const form = page.locator('form#report');
  await form.locator('select[name=place]').selectOption(place);
  await form.locator('[name=title]').fill(title);
  const from = form.locator('[name=valid_from]');
  if (!(await from.inputValue())) await from.fill(stockholmLocal(new Date(Date.now() - 60e3)));
  if (validUntil) await form.locator('[name=valid_until]').fill(validUntil);
  for (const [i, b] of bodies.entries()) await form.locator(`[name="sections[${i}].body"]`).fill(b || '');
  return form;
}

async function flowPolice() {
  const bodies = [
    `Big raid tonight, heroin may get scarce ${C.general}`,
    `Extra patrols by the fountain from 22 ${C.onSite}`,
    `Intelligence on the seller network ${C.policeOnly}`,
  ];
  const validUntil = stockholmLocal(new Date(Date.now() + 24 * 3600e3));

  // The police's /observations: every observation in full, with filters (place, category, time).
  await as('polis1', async (page) => {
    await visit(page, '/observations');
    const html = await page.content();
    check('police: /observations shows the guards\' observations in full (narrative, person, who filed)',
      html.includes(C.obsNarrative) && html.includes(C.obsPerson) && html.includes(USERS.vakt1.name) && html.includes(C.vakt2Narrative),
      `narrative ${html.includes(C.obsNarrative)}, person ${html.includes(C.obsPerson)}, reporter ${html.includes(USERS.vakt1.name)}, Hässelby ${html.includes(C.vakt2Narrative)}`);
    const filter = page.locator('form[method=get][action="/observations"], form:not([method])[action="/observations"]').first();
    const missing = [];
    for (const f of ['place', 'category', 'since', 'until']) if (!(await filter.locator(`[name=${f}]`).count())) missing.push(f);
    check('police: /observations filters by place, category and time', (await filter.count()) === 1 && !missing.length,
      (await filter.count()) ? `missing: ${missing.join(', ')}` : 'no GET form to /observations');
    if (await filter.count()) {
      await setField(filter, 'place', 'hasselby-torg');
      await Promise.all([page.waitForURL(/place=hasselby-torg/), submitButton(filter).click()]);
      await page.waitForLoadState('load');
      const h = await page.content();
      await checkPage(page, 'police: the place filter shows Hässelby torg only', h.includes(C.vakt2Narrative) && !h.includes(C.obsNarrative),
        `Hässelby ${h.includes(C.vakt2Narrative)}, Sergels ${h.includes(C.obsNarrative)}`);
      if (await filter.locator('[name=category]').count()) {
        await visit(page, '/observations');
        await setField(page.locator('form[action="/observations"]').first(), 'category', 'threat');
        await Promise.all([page.waitForURL(/category=threat/), submitButton(page.locator('form[action="/observations"]').first()).click()]);
        await page.waitForLoadState('load');
        const c = await page.content();
        await checkPage(page, 'police: the category filter shows that category only', c.includes(C.vakt2Narrative) && !c.includes(C.obsNarrative),
          `threat ${c.includes(C.vakt2Narrative)}, drug_sale ${c.includes(C.obsNarrative)}`);
      }
    }
  });

  await as('polis1', async (page) => {
    const resp = await visit(page, '/situation-reports/new');
    must('police: /situation-reports/new answers 200', resp.status() === 200, `status ${resp.status()}`);
    const form = page.locator('form#report');
    must('police: form#report is POST /situation-reports',
      (await form.count()) === 1 && (await form.getAttribute('method'))?.toLowerCase() === 'post' && (await form.getAttribute('action')) === '/situation-reports',
      'form#report missing or not POST /situation-reports');
    const audiences = [];
    for (const i of [0, 1, 2]) audiences.push(await form.locator(`input[type=hidden][name="sections[${i}].audience"]`).getAttribute('value').catch(() => null));
    check('police: sections 0/1/2 carry hidden audiences general/on_site/police_only',
      audiences.join() === 'general,on_site,police_only', `audiences ${audiences.join(', ')}`);
    check('police: place is a select with both places, valid_from/valid_until are datetime-local',
      (await form.locator('select[name=place] option[value="sergels-torg"]').count()) === 1
      && (await form.locator('select[name=place] option[value="hasselby-torg"]').count()) === 1
      && (await form.locator('input[name=valid_from]').getAttribute('type')) === 'datetime-local'
      && (await form.locator('input[name=valid_until]').getAttribute('type')) === 'datetime-local',
      'a field is missing or of another type');
    check('police: a preview and a publish button',
      (await form.locator('button[name=preview]').count()) === 1 && (await form.locator('button[name=publish]').count()) === 1,
      'button[name=preview] or button[name=publish] missing');

    await fillReport(page, { place: 'sergels-torg', title: C.reportTitle, bodies, validUntil });
    const pre = await submit(page, form.locator('button[name=preview]'), 'POST', '/situation-reports');
    await mustPage(page, 'police: preview answers with section#preview', pre.status() === 200 && (await page.locator('section#preview').count()) === 1,
      `status ${pre.status()}, at ${pathOf(page.url())}, #preview ${await page.locator('section#preview').count()}`);
    const viewer = async (v) => {
      const el = page.locator(`section#preview .as-seen-by[data-viewer="${v}"]`);
      return (await el.count()) === 1 ? el.innerText() : null;
    };
    const guard = await viewer('guard');
    const social = await viewer('social_worker');
    const coordinator = await viewer('coordinator');
    await checkPage(page, 'preview: three viewers (guard, social_worker, coordinator)', guard !== null && social !== null && coordinator !== null,
      `guard ${guard !== null}, social_worker ${social !== null}, coordinator ${coordinator !== null}`);
    const has = (t, c) => t !== null && t.includes(c);
    await checkPage(page, 'preview: a guard at that place sees general and on_site, not police_only',
      has(guard, C.general) && has(guard, C.onSite) && !has(guard, C.policeOnly),
      `general ${has(guard, C.general)}, on_site ${has(guard, C.onSite)}, police_only ${has(guard, C.policeOnly)}`);
    await checkPage(page, 'preview: a social worker sees general, never police_only',
      has(social, C.general) && !has(social, C.policeOnly),
      `general ${has(social, C.general)}, on_site ${has(social, C.onSite)}, police_only ${has(social, C.policeOnly)}`);
    await checkPage(page, 'preview: a coordinator sees general only (no on_site, no police_only)',
      has(coordinator, C.general) && !has(coordinator, C.onSite) && !has(coordinator, C.policeOnly),
      `general ${has(coordinator, C.general)}, on_site ${has(coordinator, C.onSite)}, police_only ${has(coordinator, C.policeOnly)}`);
    const f2 = page.locator('form#report');
    const kept = (await f2.count()) === 1
      && (await f2.locator('[name=title]').inputValue()) === C.reportTitle
      && (await f2.locator('select[name=place]').inputValue()) === 'sergels-torg'
      && (await f2.locator('[name="sections[0].body"]').inputValue()) === bodies[0]
      && (await f2.locator('[name="sections[1].body"]').inputValue()) === bodies[1]
      && (await f2.locator('[name="sections[2].body"]').inputValue()) === bodies[2]
      && (await f2.locator('[name=valid_until]').inputValue()) === validUntil;
    await checkPage(page, 'preview: the form comes back filled in', kept, 'a field lost its value');
    const list = await page.context().request.get('/situation-reports');
    check('preview: creates nothing', !(await list.text()).includes(C.reportTitle), 'the report is listed before publishing');

    const pub = await submit(page, page.locator('form#report button[name=publish]'), 'POST', '/situation-reports');
    await mustPage(page, 'police: publish answers 303 to /situation-reports',
      pub.status() === 303 && pathOf(pub.headers().location || '') === '/situation-reports' && pathOf(page.url()) === '/situation-reports',
      `status ${pub.status()} → ${pub.headers().location}, at ${pathOf(page.url())}`);
    const art = page.locator('article.record.report', { has: page.locator('h2', { hasText: C.reportTitle }) });
    await checkPage(page, 'police: the lägesbild is listed with its h2 title', (await art.count()) === 1, `${await art.count()} articles`);
    const secs = await art.locator('section.section').evaluateAll((els) => els.map((e) => [e.dataset.audience, e.innerText]));
    const byAud = Object.fromEntries(secs);
    await checkPage(page, 'police: all three sections shown with data-audience',
      secs.length === 3 && (byAud.general || '').includes(C.general) && (byAud.on_site || '').includes(C.onSite) && (byAud.police_only || '').includes(C.policeOnly),
      `sections: ${secs.map(([a]) => a).join(', ')}`);

    // A report with a police-only section alone: invisible to every partner, title too.
    await visit(page, '/situation-reports/new');
    await fillReport(page, { place: 'sergels-torg', title: C.hiddenTitle, bodies: ['', '', `Only for us ${C.hiddenBody}`] });
    const pub2 = await submit(page, page.locator('form#report button[name=publish]'), 'POST', '/situation-reports');
    await checkPage(page, 'police: publishes a police-only lägesbild (empty bodies are no sections)', pub2.status() === 303, `status ${pub2.status()}${await alerts(page)}`);
    const art2 = page.locator('article.record.report', { has: page.locator('h2', { hasText: C.hiddenTitle }) });
    check('police: the police-only lägesbild has exactly one section', (await art2.locator('section.section').count()) === 1,
      `${await art2.locator('section.section').count()} sections`);
  });

  await as('vakt1', async (page) => {
    await visit(page, '/situation-reports');
    const art = page.locator('article.record.report', { has: page.locator('h2', { hasText: C.reportTitle }) });
    const auds = await art.locator('section.section').evaluateAll((els) => els.map((e) => e.dataset.audience));
    const html = await page.content();
    await checkPage(page, 'guard at Sergels torg: sees general and on_site of the lägesbild',
      (await art.count()) === 1 && auds.includes('general') && auds.includes('on_site') && html.includes(C.general) && html.includes(C.onSite),
      `${await art.count()} articles, sections ${auds.join(', ')}`);
    await checkPage(page, 'guard at Sergels torg: the police_only canary is nowhere in the HTML',
      !html.includes(C.policeOnly) && !auds.includes('police_only') && !html.includes('data-audience="police_only"'),
      'police-only content or section in the HTML');
  });
  await as('vakt2', async (page) => {
    await visit(page, '/situation-reports');
    const art = page.locator('article.record.report', { has: page.locator('h2', { hasText: C.reportTitle }) });
    const auds = await art.locator('section.section').evaluateAll((els) => els.map((e) => e.dataset.audience));
    const html = await page.content();
    await checkPage(page, 'guard at Hässelby torg: sees only the general section',
      (await art.count()) === 1 && auds.join() === 'general' && html.includes(C.general),
      `${await art.count()} articles, sections ${auds.join(', ')}`);
    await checkPage(page, 'guard at Hässelby torg: neither on_site nor police_only canary in the HTML',
      !html.includes(C.onSite) && !html.includes(C.policeOnly), 'a hidden canary is in the HTML');
  });
}

// ---------------------------------------------------------------------------------------
// Flow 3: a referral, the feedback on it and a consent.

async function flowReferral() {
  await as('polis1', async (page) => {
    const resp = await visit(page, '/referrals/new');
    must('referral: /referrals/new answers 200', resp.status() === 200, `status ${resp.status()}`);
    const form = page.locator('form#referral');
    must('referral: form#referral is POST /referrals',
      (await form.count()) === 1 && (await form.getAttribute('method'))?.toLowerCase() === 'post' && (await form.getAttribute('action')) === '/referrals',
      'form#referral missing or not POST /referrals');
    check('referral: receiving_organization select offers socialtjansten-norrmalm',
      (await form.locator('select[name=receiving_organization] option[value="socialtjansten-norrmalm"]').count()) === 1, 'option missing');
    await setField(form, 'receiving_organization', 'socialtjansten-norrmalm');
    await setField(form, 'place', 'sergels-torg');
    await setField(form, 'child.alias', C.childAlias);
    await setField(form, 'child.name', C.childName);
    await setField(form, 'child.personal_identity_number', '20100101-1234');
    await setField(form, 'child.estimated_birth_year', 2010);
    await choose(page, form.locator('[name="child.age_uncertain"]'));
    await setField(form, 'child.description', `about 15, grey hoodie ${C.childDescription}`);
    await setField(form, 'concern', `Seen buying pills three nights in a row ${C.concern}`);
    const post = await submit(page, submitButton(form), 'POST', '/referrals');
    const m = /^\/referrals\/([0-9a-f-]{36})$/.exec(pathOf(post.headers().location || ''));
    await mustPage(page, 'referral: filing answers 303 to /referrals/{id}', post.status() === 303 && m && pathOf(page.url()) === `/referrals/${m[1]}`,
      `status ${post.status()} → ${post.headers().location}, at ${pathOf(page.url())}`);
    state.referralId = m[1];
    await checkPage(page, 'referral: the reporter sees it pending, with the concern',
      (await page.locator('.status[data-status="pending"]').count()) > 0 && (await page.content()).includes(C.concern),
      `status elements: ${(await page.locator('.status').evaluateAll((e) => e.map((x) => x.dataset.status))).join(', ')}`);
  });
  const id = state.referralId;

  await as('soc1', async (page) => {
    await visit(page, '/referrals');
    const art = page.locator('article.record.referral', { has: page.locator(`a[href="/referrals/${id}"]`) });
    await mustPage(page, 'social worker: the referral is in the /referrals inbox with a link', (await art.count()) === 1, `${await art.count()} articles`);
    const st = art.locator('.status');
    await checkPage(page, 'social worker: inbox shows it pending (.status data-status)',
      (await st.count()) > 0 && (await st.first().getAttribute('data-status')) === 'pending', `data-status ${await st.first().getAttribute('data-status').catch(() => 'none')}`);
    await checkPage(page, 'social worker: a fresh referral shows its due date (.due) and is not overdue',
      (await art.locator('.due').count()) > 0 && (await art.locator('.overdue').count()) === 0 && !(await art.evaluate((e) => e.classList.contains('overdue'))),
      `.due ${await art.locator('.due').count()}, .overdue ${await art.locator('.overdue').count()}`);
    const order = await page.locator('article.record.referral .status').evaluateAll((els) => els.map((e) => e.dataset.status));
    const firstOther = order.findIndex((s) => s !== 'pending');
    check('social worker: pending referrals come first', firstOther === -1 || !order.slice(firstOther).includes('pending'), `order: ${order.join(', ')}`);

    await Promise.all([page.waitForURL(`**/referrals/${id}`), art.locator(`a[href="/referrals/${id}"]`).first().click()]);
    await page.waitForLoadState('load');
    const html = await page.content();
    check('social worker: the referral page shows child and concern', html.includes(C.concern) && html.includes(C.childName), 'concern or child missing');
    const fb = page.locator('form#feedback');
    must('social worker: form#feedback posts to /referrals/{id}/feedback',
      (await fb.count()) === 1 && (await fb.getAttribute('action')) === `/referrals/${id}/feedback`, 'form#feedback missing');
    const values = await fb.locator('button[name=status]').evaluateAll((els) => els.map((e) => e.value));
    check('social worker: one button per feedback status',
      ['investigation_opened', 'not_opened', 'already_ongoing', 'withheld'].every((v) => values.includes(v)), `buttons: ${values.join(', ')}`);
    await fb.locator('[name=note]').fill(`Internal: contact with school nurse ${C.note}`);
    const fpost = await submit(page, fb.locator('button[name=status][value="investigation_opened"]'), 'POST', `/referrals/${id}/feedback`);
    check('social worker: feedback answers 303', fpost.status() === 303, `status ${fpost.status()}`);
    await visit(page, `/referrals/${id}`);
    await checkPage(page, 'social worker: status is investigation_opened and the note is shown',
      (await page.locator('.status[data-status="investigation_opened"]').count()) > 0 && (await page.content()).includes(C.note),
      `status ${(await page.locator('.status').evaluateAll((e) => e.map((x) => x.dataset.status))).join(', ')}`);

    const cf = page.locator('form#consent');
    must('social worker: form#consent posts to /referrals/{id}/consents',
      (await cf.count()) === 1 && (await cf.getAttribute('action')) === `/referrals/${id}/consents`, 'form#consent missing');
    const givenBy = await cf.locator('select[name=given_by] option').evaluateAll((els) => els.map((e) => e.value));
    const releasedTo = await cf.locator('select[name=released_to] option').evaluateAll((els) => els.map((e) => e.value));
    check('social worker: given_by offers guardian, youth, both; released_to reporter, reporter_organization',
      ['guardian', 'youth', 'both'].every((v) => givenBy.includes(v)) && ['reporter', 'reporter_organization'].every((v) => releasedTo.includes(v)),
      `given_by ${givenBy.join(', ')}; released_to ${releasedTo.join(', ')}`);
    check('social worker: consent valid_until is datetime-local', (await cf.locator('[name=valid_until]').getAttribute('type')) === 'datetime-local', 'another type');
    await setField(cf, 'given_by', 'guardian');
    await setField(cf, 'scope', 'planned measures, to the reporting officer');
    await setField(cf, 'valid_until', stockholmLocal(new Date(Date.now() + 30 * 24 * 3600e3)));
    await setField(cf, 'released_details', `Placed in a support programme ${C.released}`);
    await setField(cf, 'released_to', 'reporter');
    const cpost = await submit(page, submitButton(cf), 'POST', `/referrals/${id}/consents`);
    check('social worker: consent answers 303', cpost.status() === 303, `status ${cpost.status()}`);
    await visit(page, `/referrals/${id}`);
    await checkPage(page, 'social worker: the consent and its released details are shown', (await page.content()).includes(C.released), 'released details missing');
  });

  await as('polis1', async (page) => {
    await visit(page, `/referrals/${id}`);
    const html = await page.content();
    await checkPage(page, 'reporter: sees status investigation_opened', (await page.locator('.status[data-status="investigation_opened"]').count()) > 0,
      `status ${(await page.locator('.status').evaluateAll((e) => e.map((x) => x.dataset.status))).join(', ')}`);
    await checkPage(page, 'reporter: sees the released details in .released-details',
      (await page.locator('.released-details', { hasText: C.released }).count()) > 0, 'no .released-details with the details');
    await checkPage(page, 'reporter: the social worker\'s note is nowhere in the HTML', !html.includes(C.note), 'the note canary is in the HTML');
    await visit(page, '/referrals');
    const art = page.locator('article.record.referral', { has: page.locator(`a[href="/referrals/${id}"]`) });
    await checkPage(page, 'reporter: /referrals lists it with status investigation_opened',
      (await art.count()) === 1 && (await art.locator('.status').first().getAttribute('data-status')) === 'investigation_opened',
      `${await art.count()} articles`);
    check('reporter: note canary not on /referrals', !(await page.content()).includes(C.note), 'the note canary is in the HTML');
  });
}

// ---------------------------------------------------------------------------------------
// Flow 4: the auditor finds those views.

async function auditRows(page) {
  return page.locator('#audit-entries tbody tr, #audit-entries > tr').evaluateAll((rows) =>
    rows.map((r) => {
      const cells = [...r.querySelectorAll('td, th')].map((c) => c.innerText.trim());
      const ch = r.querySelector('.channel');
      if (ch) cells.push(`channel:${ch.innerText.trim()}`);
      return cells;
    }).filter((cells) => cells.length));
}

async function flowAudit() {
  const id = state.referralId;
  await as('revisor1', async (page) => {
    must('audit: revisor1 lands on /audit', pathOf(page.url()) === '/audit', `at ${pathOf(page.url())}`);
    const form = page.locator('form#audit-search');
    must('audit: form#audit-search is GET /audit',
      (await form.count()) === 1 && (await form.getAttribute('method'))?.toLowerCase() === 'get' && (await form.getAttribute('action')) === '/audit',
      'form#audit-search missing or not GET /audit');
    const fields = [];
    for (const f of ['actor', 'record', 'action', 'since', 'until', 'purpose']) if (!(await form.locator(`[name=${f}]`).count())) fields.push(f);
    check('audit: search by actor, record, action, since, until, purpose', !fields.length, `missing: ${fields.join(', ')}`);
    const chain = page.locator('#chain');
    const chainText = (await chain.count()) ? await chain.innerText() : '';
    check('audit: #chain shows the chain head (the anchor to compare)', /[0-9a-f]{16,}/i.test(chainText), `#chain: "${short(chainText)}"`);
    // The verification status: shown, or one click away.
    if (!(await chain.locator('[data-status]').count())) {
      const verify = chain.locator('a, button').first();
      if (await verify.count()) await Promise.all([page.waitForNavigation().catch(() => {}), verify.click()]), await page.waitForLoadState('load');
    }
    const status = await page.locator('#chain [data-status]').first().getAttribute('data-status').catch(() => null);
    await checkPage(page, 'audit: #chain shows the verification status (verified)', status === 'verified',
      `status ${status}; #chain: "${short((await page.locator('#chain').innerText().catch(() => '')).replace(/\s+/g, ' '))}"`);
    const exp = page.locator('a#export');
    if (check('audit: a#export links an export', (await exp.count()) === 1, 'no a#export')) {
      const r = await page.context().request.get(await exp.getAttribute('href'));
      const body = await r.text();
      check('audit: the export is CSV', r.status() === 200 && /csv/.test(r.headers()['content-type'] || '') && body.split('\n').length > 1,
        `status ${r.status()}, type ${r.headers()['content-type']}`);
    }
    if (!id) return skip('audit: the referral\'s entries', 'no referral was filed');

    await form.locator('[name=record]').fill(id);
    await Promise.all([page.waitForURL(/record=/), submitButton(form).click()]);
    await page.waitForLoadState('load');
    let rows = await auditRows(page);
    const has = (cells, ...words) => words.every((w) => cells.some((c) => c === w || c.includes(w)));
    await checkPage(page, 'audit: by record — polis1 via web (create or read)', rows.some((r) => has(r, 'polis1', 'channel:web')), `${rows.length} rows`);
    await checkPage(page, 'audit: by record — soc1 via web (feedback, consent, reads)', rows.some((r) => has(r, 'soc1', 'channel:web')), `${rows.length} rows`);
    check('audit: by record — every row names the record', rows.length > 0 && rows.every((r) => r.some((c) => c.includes(id))), 'a row without the id');
    const auditHtml = await page.content();
    check('audit: no case content in the audit page', ![C.concern, C.note, C.released, C.childName].some((c) => auditHtml.includes(c)),
      [C.concern, C.note, C.released, C.childName].filter((c) => auditHtml.includes(c)).join(', '));

    await visit(page, '/audit');
    await page.locator('form#audit-search [name=actor]').fill('polis1');
    await Promise.all([page.waitForURL(/actor=/), submitButton(page.locator('form#audit-search')).click()]);
    await page.waitForLoadState('load');
    rows = await auditRows(page);
    await checkPage(page, 'audit: by actor polis1 — the referral\'s entries via web', rows.some((r) => has(r, 'channel:web') && r.some((c) => c.includes(id))),
      `${rows.length} rows`);
    check('audit: by actor polis1 — only polis1', rows.length > 0 && rows.every((r) => r.some((c) => c === 'polis1' || c.includes('polis1'))), 'a row of another actor');

    // vakt1 signed in to the API too (for the pseudonym): both channels appear.
    await visit(page, '/audit?actor=vakt1');
    rows = await auditRows(page);
    check('audit: the channel column tells web from api (vakt1 used both)',
      rows.some((r) => r.includes('channel:web')) && rows.some((r) => r.includes('channel:api')),
      `${rows.length} rows; channels ${[...new Set(rows.flatMap((r) => r.filter((c) => c.startsWith('channel:'))))].join(', ') || 'no .channel cells'}`);
  });
}

// ---------------------------------------------------------------------------------------
// Flow 5: the admin disables a user with an open session.

async function createUser(page, username, password) {
  await visit(page, '/admin');
  const form = page.locator('form#new-user');
  await setField(form, 'username', username);
  if (await form.locator('[name=display_name]').count()) await setField(form, 'display_name', `Tillfällig ${username}`);
  await setField(form, 'organization', 'ordningsvakter-stockholm');
  await setField(form, 'role', 'guard');
  if (await form.locator('[name=places]').count()) await setField(form, 'places', 'sergels-torg');
  await setField(form, 'password', password);
  const action = pathOf((await form.getAttribute('action')) || '/admin/users');
  return submit(page, submitButton(form), 'POST', action);
}

async function flowAdmin() {
  const tmp = `tmp-${RUN.toLowerCase()}`;
  const tmp2 = `tmp2-${RUN.toLowerCase()}`;
  const tmpPassword = `throwaway-${RUN}-password`;
  const newPassword = `reset-${RUN}-password`;
  const a = await session('admin1');
  const users = [];
  try {
    const { page } = a;
    must('admin: admin1 lands on /admin', pathOf(page.url()) === '/admin', `at ${pathOf(page.url())}`);
    const adminHtml = await page.content();
    check('admin: a table of users, a row tr#user-{username} each',
      ALL.every((u) => adminHtml.includes(`id="user-${u}"`)) && (await page.locator('table tr#user-polis1').count()) === 1,
      `rows: ${ALL.filter((u) => !adminHtml.includes(`id="user-${u}"`)).join(', ')} missing`);
    check('admin: organisations and places are shown',
      adminHtml.includes('Socialtjänsten Norrmalm') && adminHtml.includes('Hässelby torg') && adminHtml.includes('hasselby-torg'),
      'an organisation or place is missing');
    check('admin: each user row has a disable form',
      (await page.locator('tr#user-vakt2 form[method=post][action="/admin/users/vakt2/disable"] button').count()) === 1, 'no disable form for vakt2');
    check('admin: a create-user form and a reset-password form',
      (await page.locator('form#new-user').count()) === 1 && (await page.locator('form:not(#new-user):has(input[type=password])').count()) >= 1,
      `#new-user ${await page.locator('form#new-user').count()}, password forms ${await page.locator('form:has(input[type=password])').count()}`);
    for (const name of [tmp, tmp2]) {
      const resp = await createUser(page, name, tmpPassword);
      const why = await alerts(page);
      await visit(page, '/admin');
      await mustPage(page, `admin: creates a throwaway guard (${name.split('-')[0]}) through the form`, resp.status() < 400 && (await page.locator(`tr#user-${name}`).count()) === 1,
        `status ${resp.status()}, row ${await page.locator(`tr#user-${name}`).count()}${why}`);
      state.tmpUsers.push(name);
    }

    /**
     * The user works in their own browser; the admin changes the account; the user's
     * next click must land on /login — sooner than the idle timeout could explain.
     */
    const endsSession = async (name, password, label, change) => {
      const u = await session(name, { password });
      users.push(u);
      must(`admin: ${label}: the user signs in (lands on /situation-reports)`, pathOf(u.page.url()) === '/situation-reports', `at ${pathOf(u.page.url())}`);
      await clickSomewhere(u.page, ['/observations']);
      const before = Date.now();
      must(`admin: ${label}: the user's session works until then`, pathOf(u.page.url()) === '/observations', `at ${pathOf(u.page.url())}`);
      await visit(page, '/admin');
      if (pathOf(page.url()) === '/login') await signIn(a, 'admin1', PASSWORD), await visit(page, '/admin');
      await change();
      const where = await clickSomewhere(u.page, ['/situation-reports']);
      const elapsed = Date.now() - before;
      if (IDLE && elapsed >= IDLE * 1000) {
        skip(`admin: ${label}: the user's next click lands on /login`, `${elapsed} ms passed, longer than the idle timeout: cannot tell`);
      } else {
        await checkPage(u.page, `admin: ${label}: the user's next click lands on /login`, pathOf(u.page.url()) === '/login', `clicked ${where}, at ${pathOf(u.page.url())}`);
      }
      return u;
    };

    const u = await endsSession(tmp, tmpPassword, 'disable', async () => {
      const btn = page.locator(`tr#user-${tmp} form[method=post][action="/admin/users/${tmp}/disable"] button`);
      must('admin: the user row has the disable button', (await btn.count()) === 1, 'no button');
      const r = await submit(page, btn, 'POST', `/admin/users/${tmp}/disable`);
      check('admin: disabling answers with a redirect', r.status() === 303, `status ${r.status()}`);
    });
    const again = await u.ctx.request.post('/login', { form: { username: tmp, password: tmpPassword }, maxRedirects: 0, failOnStatusCode: false });
    check('admin: the disabled user cannot sign in again', again.status() !== 303 && !(again.headers()['set-cookie'] || '').includes(`${SESSION_COOKIE}=ey`),
      `POST /login ${again.status()}`);

    const u2 = await endsSession(tmp2, tmpPassword, 'password reset', async () => {
      let target = page.locator(`tr#user-${tmp2} form:has(input[type=password])`)
        .or(page.locator(`form[action^="/admin/users/${tmp2}/"]:has(input[type=password])`)).first();
      if (!(await target.count())) {
        // A single reset form with a username field.
        target = page.locator('form:not(#new-user):has(input[type=password])').first();
        if (await target.locator('[name=username]').count()) await setField(target, 'username', tmp2);
      }
      must('admin: a reset-password form for the user', (await target.count()) === 1, 'none found');
      await reveal(target);
      await target.locator('input[type=password]').first().fill(newPassword);
      const action = pathOf((await target.getAttribute('action')) || '/admin');
      const r = await submit(page, submitButton(target), 'POST', action);
      check('admin: password reset accepted', r.status() < 400, `status ${r.status()} on ${action}${await alerts(page)}`);
    });
    await signIn(u2, tmp2, newPassword);
    check('admin: the new password works', pathOf(u2.page.url()) === '/situation-reports', `at ${pathOf(u2.page.url())}`);
    const old = await u2.ctx.request.post('/login', { form: { username: tmp2, password: tmpPassword }, maxRedirects: 0, failOnStatusCode: false });
    check('admin: the old password no longer works', old.status() !== 303, `POST /login ${old.status()}`);
  } finally {
    for (const u of users) await close(u);
    await close(a);
  }
}

// ---------------------------------------------------------------------------------------
// Flow 6: secrecy in the HTML of every page each user reaches.

function forbiddenFor(user) {
  const f = [];
  const add = (why, ...canaries) => canaries.forEach((c) => c && f.push([why, c]));
  const notPolice = !POLICE.includes(user);
  // Observations: narrative and persons for police and the guard who filed them.
  if (notPolice && user !== 'vakt1') add('observation narrative/persons of vakt1', C.obsNarrative, C.obsPerson, C.obsNoJs);
  if (notPolice && user !== 'vakt2') add('observation narrative of vakt2', C.vakt2Narrative);
  if (notPolice) add('observation narrative of falt1 (outreach reads the core only, own too)', C.faltNarrative);
  // A guard's real identity for partners (they see the pseudonym only).
  if (['soc1', 'falt1', 'samordnare1', 'vakt2'].includes(user)) add('the real identity of guard vakt1', USERS.vakt1.name, '>vakt1<');
  if (['soc1', 'falt1', 'samordnare1', 'vakt1'].includes(user)) add('the real identity of guard vakt2', USERS.vakt2.name, '>vakt2<');
  // Guards see the core of observations at their own places only.
  if (user === 'vakt2') add('pseudonym of vakt1 (Sergels torg only)', state.pseudonyms.vakt1);
  if (user === 'vakt1') add('pseudonym of vakt2 (Hässelby torg only)', state.pseudonyms.vakt2);
  // The admin never sees a pseudonym.
  if (user === 'admin1') Object.entries(state.pseudonyms).forEach(([u, p]) => add(`pseudonym of ${u}`, p));
  // Lägesbild.
  if (['revisor1', 'admin1'].includes(user)) add('lägesbild (no case content)', C.general, C.reportTitle);
  if (!['polis1', 'analytiker1', 'vakt1', 'soc1', 'falt1'].includes(user)) add('on-site section at Sergels torg', C.onSite);
  if (notPolice) add('police-only section', C.policeOnly, C.hiddenBody, C.hiddenTitle);
  // Referral.
  if (!['polis1', 'soc1'].includes(user)) add('child and concern', C.childName, C.childAlias, C.childDescription, C.concern);
  if (user !== 'soc1') add('social services\' note', C.note);
  if (!['polis1', 'soc1'].includes(user)) add('released details', C.released);
  // Records other flows made to test the CSRF defence (never created at all).
  add('a refused form post', C.csrfMissing, C.csrfForeign, C.csrfOwnOther, C.csrfCrossSite, C.csrfReport, C.csrfReferral);
  return f;
}

async function flowSecrecy() {
  const id = state.referralId;
  const fakeId = id ? `${id.slice(0, 24)}${[...id.slice(24)].map((ch) => '0123456789abcdef'[(parseInt(ch, 16) + 7) % 16]).join('')}` : null;
  for (const user of ALL) {
    await as(user, async (page, s) => {
      const forbidden = forbiddenFor(user);
      const reached = [];
      const leaks = [];
      const scan = async (label) => {
        const html = await page.content();
        for (const [why, c] of forbidden) if (html.includes(c)) leaks.push(`${label}: ${why} (${c})`);
      };
      // Every page of the contract, whether or not the user's pages link to it; the
      // pages the user reaches by clicking (linked from them) are the ones examined later.
      const answering = [];
      const linked = new Set();
      const links = async () => (await page.locator('a[href^="/"]').evaluateAll((els) => els.map((e) => e.getAttribute('href'))))
        .map((h) => h.split('?')[0]).filter((h) => !h.startsWith('/lang/') && !h.startsWith('/static/'));
      for (const p of CANDIDATE_PAGES) {
        let resp = await visit(page, p);
        if (pathOf(page.url()) === '/login') {
          // An idle logout between two pages of a slow machine: sign in again.
          await signIn(s, user, PASSWORD);
          resp = await visit(page, p);
        }
        await scan(p);
        if (resp && resp.status() === 200 && pathOf(page.url()) === p) {
          answering.push(p);
          (await links()).forEach((h) => linked.add(h));
        }
      }
      await visit(page, '/');
      const home = pathOf(page.url());
      (await links()).forEach((h) => linked.add(h));
      for (const p of [...linked]) {
        if (CANDIDATE_PAGES.includes(p) || p === '/' || /^\/referrals\/[0-9a-f-]{36}$/.test(p) || p.startsWith('/audit/')) continue;
        await visit(page, p);
        await scan(p);
      }
      reached.push(home, ...answering.filter((p) => p !== home && linked.has(p)));
      state.reached[user] = reached;
      ok(`secrecy ${user}: home ${home}; reaches by links ${reached.slice(1).join(', ') || 'nothing else'}; ${answering.length} contract pages answer 200`);

      if (id) {
        const resp = await visit(page, `/referrals/${id}`);
        await scan(`/referrals/${id}`);
        const mayRead = ['polis1', 'soc1'].includes(user);
        if (mayRead) {
          check(`secrecy ${user}: opens the referral`, resp.status() === 200, `status ${resp.status()}`);
          state.reached[user].push(`/referrals/${id}`);
        } else {
          const hidden = { status: resp.status(), html: (await page.content()).replaceAll(id, 'ID') };
          const resp2 = await visit(page, `/referrals/${fakeId}`);
          const none = { status: resp2.status(), html: (await page.content()).replaceAll(fakeId, 'ID') };
          await checkPage(page, `secrecy ${user}: a referral they may not see is a 404 like one that does not exist`,
            hidden.status === 404 && none.status === 404 && hidden.html === none.html && (await page.locator('main#main').count()) === 1,
            `status ${hidden.status} vs ${none.status}, same HTML ${hidden.html === none.html}`);
        }
      }
      const storage = await page.evaluate(async () => ({
        kept: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
        workers: navigator.serviceWorker ? (await navigator.serviceWorker.getRegistrations()).length : 0,
      }));
      if (forbidden.length || storage.kept.length > 4) {
        check(`secrecy ${user}: nothing in localStorage/sessionStorage, no service worker`, storage.kept === '{}{}' && storage.workers === 0,
          `storage ${short(storage.kept)}, workers ${storage.workers}`);
      }
      check(`secrecy ${user}: no hidden canary in the HTML of any page (${forbidden.length} canaries)`, !leaks.length, leaks.join('; '));
    });
  }
}

// ---------------------------------------------------------------------------------------
// Flow 7: attacks — CSRF, framing, idle timeout.

/** A small server on another origin (another port of the loopback address). */
async function attackerSite(pages) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(pages[req.url] || '<!doctype html><title>x</title>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

async function flowAttacks() {
  const observationForm = (description, csrf) => {
    const f = {
      place: 'sergels-torg', category: 'other', observed_at: stockholmLocal(new Date()), description,
    };
    if (csrf !== undefined) f.csrf = csrf;
    return f;
  };
  const other = await session('vakt2');
  const again = await session('vakt1');
  const s = await session('vakt1');
  try {
    const { page, ctx } = s;
    await visit(page, '/observations/new');
    const mine = await csrfOf(page);
    await visit(other.page, '/observations/new');
    const foreign = await csrfOf(other.page);
    await visit(again.page, '/observations/new');
    const ownOther = await csrfOf(again.page);
    must('csrf: each session\'s form carries a token', mine && foreign && ownOther, `tokens ${!!mine}, ${!!foreign}, ${!!ownOther}`);
    check('csrf: two sessions of one user get different tokens', mine !== ownOther, 'the same token in two sessions');

    const post = (form) => ctx.request.post('/observations', { form, maxRedirects: 0, failOnStatusCode: false });
    let r = await post(observationForm(C.csrfMissing));
    check('csrf: an observation post without csrf is refused (403)', r.status() === 403, `status ${r.status()}`);
    r = await post(observationForm(C.csrfForeign, foreign));
    check('csrf: an observation post with another user\'s session token is refused (403)', r.status() === 403, `status ${r.status()}`);
    r = await post(observationForm(C.csrfOwnOther, ownOther));
    check('csrf: an observation post with the token of the same user\'s other session is refused (403)', r.status() === 403, `status ${r.status()}`);
    r = await post(observationForm(C.csrfValid, mine));
    check('csrf: the same post with the session\'s own token is accepted (303)', r.status() === 303, `status ${r.status()}`);

    // A page on another origin submits a form into the signed-in browser.
    const site = await attackerSite({
      '/post': `<!doctype html><title>x</title><form id=f method=post action="${BASE}/observations">
        <input name=place value=sergels-torg><input name=category value=other>
        <input name=observed_at value="${stockholmLocal(new Date())}"><input name=description value="${C.csrfCrossSite}"></form>
        <script>document.getElementById('f').submit()</script>`,
      '/frame': `<!doctype html><title>x</title><iframe id=victim src="${BASE}/situation-reports" width=360 height=600></iframe>`,
    });
    try {
      const attacker = await ctx.newPage();
      const answer = attacker.waitForResponse((x) => x.request().method() === 'POST' && pathOf(x.url()) === '/observations');
      answer.catch(() => {});
      await attacker.goto(`${site.origin}/post`);
      const cross = await answer;
      check('csrf: a form posted from another origin is refused (403)', cross.status() === 403, `status ${cross.status()}`);
      await attacker.close();

      const framer = await ctx.newPage();
      await framer.goto(`${site.origin}/frame`);
      await framer.waitForTimeout(1000);
      const frame = framer.frames().find((f) => f !== framer.mainFrame());
      let rendered = false;
      if (frame && !frame.url().startsWith('chrome-error:')) {
        rendered = await frame.evaluate(() => !!document.querySelector('main#main')).catch(() => false);
      }
      check('framing: a page framed by another origin is not rendered', !rendered, `frame at ${frame && frame.url()} rendered the page`);
      await framer.close();
    } finally {
      site.server.close();
    }
    const fr = await page.context().request.get('/situation-reports');
    const hp = headerProblems(fr, { caseData: true });
    check('framing: frame-ancestors \'none\' and X-Frame-Options DENY on a case page', !hp.length, hp.join('; '));

    // Other forms refuse a post without csrf as well.
    await as('polis1', async (pp, ps) => {
      const rr = await ps.ctx.request.post('/situation-reports', {
        form: { place: 'sergels-torg', title: C.csrfReport, 'sections[0].audience': 'general', 'sections[0].body': C.csrfReport, publish: '1' },
        maxRedirects: 0, failOnStatusCode: false,
      });
      check('csrf: a lägesbild post without csrf is refused (403)', rr.status() === 403, `status ${rr.status()}`);
      const rf = await ps.ctx.request.post('/referrals', {
        form: { receiving_organization: 'socialtjansten-norrmalm', 'child.alias': C.csrfReferral, concern: C.csrfReferral },
        maxRedirects: 0, failOnStatusCode: false,
      });
      check('csrf: a referral post without csrf is refused (403)', rf.status() === 403, `status ${rf.status()}`);
      const rl = await ps.ctx.request.post('/logout', { form: {}, maxRedirects: 0, failOnStatusCode: false });
      check('csrf: a logout post without csrf is refused (403)', rl.status() === 403, `status ${rl.status()}`);
    });
    if (state.referralId) {
      await as('soc1', async (sp, ss) => {
        const rr = await ss.ctx.request.post(`/referrals/${state.referralId}/feedback`, {
          form: { status: 'not_opened' }, maxRedirects: 0, failOnStatusCode: false,
        });
        check('csrf: a feedback post without csrf is refused (403)', rr.status() === 403, `status ${rr.status()}`);
      });
    }
    await as('admin1', async (ap, as_) => {
      const rr = await as_.ctx.request.post('/admin/users/vakt2/disable', { form: {}, maxRedirects: 0, failOnStatusCode: false });
      check('csrf: an admin disable post without csrf is refused (403)', rr.status() === 403, `status ${rr.status()}`);
    });
    await as('vakt2', async (vp) => {
      check('csrf: vakt2 still signs in (the refused disable changed nothing)', pathOf(vp.url()) === '/situation-reports', `at ${pathOf(vp.url())}`);
    });

    // Nothing was created by the refused posts.
    await visit(page, '/observations');
    if (pathOf(page.url()) === '/login') await signIn(s, 'vakt1', PASSWORD), await visit(page, '/observations');
    const html = await page.content();
    check('csrf: the refused posts created nothing', ![C.csrfMissing, C.csrfForeign, C.csrfOwnOther, C.csrfCrossSite].some((c) => html.includes(c)),
      [C.csrfMissing, C.csrfForeign, C.csrfOwnOther, C.csrfCrossSite].filter((c) => html.includes(c)).join(', '));
    check('csrf: the accepted post is listed', html.includes(C.csrfValid), 'not listed');
    await as('polis1', async (pp) => {
      await visit(pp, '/situation-reports');
      const h1 = await pp.content();
      await visit(pp, '/referrals');
      const h2 = await pp.content();
      check('csrf: no lägesbild or referral from refused posts', !h1.includes(C.csrfReport) && !h2.includes(C.csrfReferral), 'a refused post created a record');
    });
  } finally {
    await close(s);
    await close(other);
    await close(again);
  }

  // Idle timeout.
  if (!IDLE) return skip('idle: timeout', 'IDLE_SECS not set');
  await as('vakt1', async (page) => {
    const step = Math.max(500, (IDLE * 1000) / 2);
    for (let i = 0; i < 3; i++) {
      await page.waitForTimeout(step);
      await clickSomewhere(page, i % 2 ? ['/situation-reports'] : ['/observations']);
    }
    check(`idle: requests every ${step / 1000}s keep the session (${(3 * step) / 1000}s > ${IDLE}s)`, pathOf(page.url()) !== '/login', `at ${pathOf(page.url())}`);
    await page.waitForTimeout((IDLE + 1) * 1000);
    const where = await clickSomewhere(page, ['/observations']);
    await checkPage(page, `idle: after ${IDLE + 1}s without a request the next click lands on /login`, pathOf(page.url()) === '/login', `clicked ${where}, at ${pathOf(page.url())}`);
  });
}

// ---------------------------------------------------------------------------------------
// Flows 8 and 9: accessibility (both languages, both colour schemes) and layout.

async function flowAccessibility() {
  // Findings per page: kind -> page -> problem -> [where seen]. One line per kind and page.
  const findings = { axe: new Map(), layout: new Map(), skeleton: new Map(), headers: new Map() };
  const note = (kind, pageLabel, problems, where) => {
    const byPage = findings[kind];
    if (!byPage.has(pageLabel)) byPage.set(pageLabel, new Map());
    const m = byPage.get(pageLabel);
    for (const p of problems) m.set(p, [...(m.get(p) || []), where]);
  };
  const examine = async (page, pageLabel, where, { resp, lang, signedIn, first }) => {
    const lp = await page.getAttribute('html', 'lang');
    note('skeleton', pageLabel, lp === lang ? [] : [`html lang "${lp}" where ${lang} was asked for`], where);
    if (first && resp) {
      note('headers', pageLabel, headerProblems(resp, { caseData: signedIn }), where);
      if (resp.status() === 200) note('skeleton', pageLabel, await skeletonProblems(page, { signedIn, lang }), where);
    }
    note('axe', pageLabel, await axeProblems(page), where);
    note('layout', pageLabel, await layoutProblems(page), where);
  };

  let first = true;
  for (const lang of ['sv', 'en']) {
    for (const scheme of ['light', 'dark']) {
      const combo = `${lang}/${scheme}`;
      // Signed out: the login page and its error state.
      const s = await session(null, { lang, scheme });
      try {
        const resp = await visit(s.page, '/login');
        await examine(s.page, '/login', combo, { resp, lang, signedIn: false, first });
        const form = s.page.locator('form#login');
        await form.locator('[name=username]').fill(`nobody-${RUN.toLowerCase()}-${lang}-${scheme}`);
        await form.locator('[name=password]').fill('wrong-password');
        const r2 = await submit(s.page, submitButton(form), 'POST', '/login');
        await examine(s.page, '/login (wrong password)', combo, { resp: r2, lang, signedIn: false, first: false });
      } finally {
        await close(s);
      }

      for (const user of ALL) {
        const pages = state.reached[user] || [HOME[USERS[user].role]];
        await as(user, async (page, us) => {
          const visitAll = [...pages];
          if (user === 'vakt1' && state.referralId) visitAll.push(`/referrals/${state.referralId}`); // a 404 page
          for (const p of visitAll) {
            let resp = await visit(page, p);
            if (pathOf(page.url()) === '/login') {
              await signIn(us, user, PASSWORD); // an idle logout on a slow machine
              resp = await visit(page, p);
            }
            const label = p.replace(state.referralId || '\u0000', '{id}') + (resp.status() === 404 ? ' (404)' : '');
            await examine(page, label, `${combo} ${user}`, { resp, lang, signedIn: true, first });
          }
          if (user === 'polis1') {
            // The preview (a POST's answer).
            await visit(page, '/situation-reports/new');
            await fillReport(page, { place: 'hasselby-torg', title: `a11y ${RUN}`, bodies: ['general text', 'on site text', 'police text'] });
            const resp = await submit(page, page.locator('form#report button[name=preview]'), 'POST', '/situation-reports');
            await examine(page, '/situation-reports/new (preview)', `${combo} ${user}`, { resp, lang, signedIn: true, first });
          }
        }, { lang, scheme });
      }
      first = false;
    }
  }

  const what = {
    axe: 'no serious or critical axe violation (sv, en × light, dark)',
    layout: 'no horizontal scroll at 360px, touch targets ≥ 44px',
    skeleton: 'html lang as asked; main#main, logout form, language links, csrf in every POST form',
    headers: 'CSP frame-ancestors \'none\' without unsafe-inline, X-Frame-Options DENY, Referrer-Policy no-referrer, no-store',
  };
  for (const kind of ['axe', 'layout', 'skeleton', 'headers']) {
    for (const [pageLabel, problems] of findings[kind]) {
      const detail = [...problems].map(([p, where]) => `${p} [${where.length === 1 ? where[0] : `${where.length}×, e.g. ${where[0]}`}]`).join('; ');
      check(`${kind} ${pageLabel}: ${what[kind]}`, problems.size === 0, detail);
    }
  }
  check('csp: no Content-Security-Policy violation reported by the browser on any page', !cspErrors.length, [...new Set(cspErrors)].slice(0, 8).join('; '));
}

// ---------------------------------------------------------------------------------------
// Screenshots for the README (SCREENSHOTS=1): each role's main page on a phone, showing
// a lägesbild and a referral written like real ones (the flows' records carry canaries).

async function flowScreenshots() {
  if (!SCREENSHOTS) return skip('screenshots', 'SCREENSHOTS=1 not set');
  fs.mkdirSync(SHOTS, { recursive: true });
  const report = {
    place: 'sergels-torg',
    title: 'Kväll – Sergels torg',
    bodies: [
      'Stort tillslag i eftermiddags. Heroin kan bli ont om och det kan bli oroligt i kväll – var försiktiga.',
      'Extra patruller vid fontänen och trappan till T-banan från kl. 22.',
      'Uppgifter om säljarnätverket vid plattan; spaning pågår.',
    ],
    validUntil: stockholmLocal(new Date(Date.now() + 12 * 3600e3)),
  };
  await as('polis1', async (page) => {
    await visit(page, '/referrals/new');
    const form = page.locator('form#referral');
    await setField(form, 'receiving_organization', 'socialtjansten-norrmalm');
    await setField(form, 'place', 'sergels-torg');
    await setField(form, 'child.alias', 'Mille');
    await setField(form, 'child.estimated_birth_year', 2010);
    await choose(page, form.locator('[name="child.age_uncertain"]'));
    await setField(form, 'child.description', 'Cirka 15 år, grå luvtröja, röd keps');
    await setField(form, 'concern', 'Sedd köpa tabletter vid Sergels torg tre kvällar i rad, verkade påverkad.');
    await submit(page, submitButton(form), 'POST', '/referrals');

    await visit(page, '/situation-reports/new');
    await fillReport(page, report);
    await submit(page, page.locator('form#report button[name=publish]'), 'POST', '/situation-reports');

    await visit(page, '/situation-reports/new');
    await fillReport(page, { ...report, title: 'Natt – Sergels torg' });
    await submit(page, page.locator('form#report button[name=preview]'), 'POST', '/situation-reports');
    await page.locator('section#preview').evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await page.screenshot({ path: path.join(SHOTS, 'police.png') });
    ok('screenshot: police.png (polis1, /situation-reports/new with the preview "as seen by")');
  });
  await as('vakt1', async (page) => {
    await visit(page, '/situation-reports');
    await page.screenshot({ path: path.join(SHOTS, 'guard.png') });
    ok('screenshot: guard.png (vakt1, /situation-reports)');
  });
  await as('soc1', async (page) => {
    await visit(page, '/referrals');
    await page.screenshot({ path: path.join(SHOTS, 'social.png') });
    ok('screenshot: social.png (soc1, /referrals)');
  });
}

// ---------------------------------------------------------------------------------------

/** Live alerts: the banner appears for a new referral to the social worker's organisation, linking to it, and never for a guard. */
async function flowAlerts() {
  const police = await api.token('polis1');
  const file = async (alias) => {
    const r = await fetch(`${BASE}/api/v1/referrals`, {
      method: 'POST',
      headers: { authorization: `Bearer ${police}`, 'content-type': 'application/json' },
      body: JSON.stringify({ receiving_organization: 'socialtjansten-norrmalm', child: { alias }, concern: `Alone at the scene ${RUN}` }),
    });
    return r.ok ? (await r.json()).id : null;
  };
  await as('soc1', async (page) => {
    await visit(page, '/referrals');
    const box = page.locator('#alert');
    must('alerts: every signed-in page has a hidden #alert banner', (await box.count()) === 1 && (await box.isHidden()), 'no hidden #alert');
    // The stream opens as the page loads; give it a moment before filing.
    await page.waitForTimeout(1000);
    const id = await file(`ALERT-${RUN}`);
    must('alerts: polis1 files a referral through the API', !!id, 'POST /api/v1/referrals failed');
    await box.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {});
    const href = await box.locator('a').getAttribute('href').catch(() => null);
    await checkPage(page, 'alerts: soc1 sees the banner for the new referral, linking to it', href === `/referrals/${id}`, `banner link ${href}`);
    const text = (await box.innerText().catch(() => '')).trim();
    check('alerts: the banner says what happened, in the page language', /orosanmälan/i.test(text), `"${short(text)}"`);
  });
  await as('vakt2', async (page) => {
    await visit(page, '/situation-reports');
    await page.waitForTimeout(1000);
    await file(`ALERT2-${RUN}`);
    await page.waitForTimeout(2000);
    check('alerts: a guard gets no banner for a referral', await page.locator('#alert').isHidden(), 'the banner showed');
  });
}

/** The code an authenticator app shows for a base32 key, `steps` time steps from now (RFC 6238). */
function totp(base32, steps = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) key.push(parseInt(bits.slice(i, i + 8), 2));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + steps));
  const h = crypto.createHmac('sha1', Buffer.from(key)).update(counter).digest();
  const o = h[h.length - 1] & 15;
  const n = ((h[o] & 127) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1e6).padStart(6, '0');
}

/** Second factor: enrolment through the page (QR code and key), ten recovery codes, then a sign-in that needs the code. Runs last: the user needs a code from then on. */
async function flowSecondFactor() {
  const user = 'samordnare1';
  let secret = null;
  await as(user, async (page) => {
    await visit(page, '/second-factor');
    must('second factor: the enrolment page shows a QR code and the key', (await page.locator('figure.qr svg').count()) === 1 && (await page.locator('#totp-secret').count()) === 1, 'no QR code or key');
    secret = (await page.locator('#totp-secret').innerText()).trim();
    const form = page.locator('form#second-factor');
    await form.locator('[name=code]').fill(totp(secret, 0));
    const post = await submit(page, submitButton(form), 'POST', '/second-factor');
    await checkPage(page, 'second factor: the code the app shows confirms it; ten recovery codes are shown once',
      post.status() === 200 && (await page.locator('#recovery-codes li').count()) === 10, `status ${post.status()}`);
  });
  await as(null, async (page) => {
    await page.goto('/login');
    let form = page.locator('form#login');
    await form.locator('[name=username]').fill(user);
    await form.locator('[name=password]').fill(PASSWORD);
    const refused = await submit(page, submitButton(form), 'POST', '/login');
    check('second factor: the password alone no longer signs in', refused.status() === 401, `status ${refused.status()}`);
    form = page.locator('form#login');
    await form.locator('[name=username]').fill(user);
    await form.locator('[name=password]').fill(PASSWORD);
    await form.locator('[name=totp]').fill(totp(secret, 1));
    const post = await submit(page, submitButton(form), 'POST', '/login');
    await checkPage(page, 'second factor: password and code sign in', post.status() === 303 && pathOf(page.url()) !== '/login',
      `status ${post.status()} at ${pathOf(page.url())}`);
  });
}

const FLOWS = [
  ['login', flowLogin],
  ['guard', flowGuard],
  ['police', flowPolice],
  ['referral', flowReferral],
  ['audit', flowAudit],
  ['admin', flowAdmin],
  ['secrecy', flowSecrecy],
  ['attacks', flowAttacks],
  ['a11y', flowAccessibility],
  ['alerts', flowAlerts],
  ['screenshots', flowScreenshots],
  // Last: from here on its user needs a code to sign in.
  ['second-factor', flowSecondFactor],
];

async function main() {
  const started = Date.now();
  console.log(`web tests against ${BASE} (run ${RUN})`);
  fs.rmSync(RESULTS, { recursive: true, force: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    for (const u of ['vakt1', 'vakt2', 'falt1', 'polis1', 'soc1']) {
      const me = await api.me(u).catch(() => null);
      if (me && me.pseudonym) state.pseudonyms[u] = me.pseudonym;
    }
    for (const [name, fn] of FLOWS) {
      if (ONLY.length && !ONLY.includes(name)) continue;
      console.log(`# ${name}`);
      try {
        await fn();
      } catch (e) {
        if (!(e instanceof Abort)) fail(`${name}: stopped by an error`, short(String(e && e.message || e).split('\n').slice(0, 3).join(' '), 400));
        else console.log(`# ${name}: stopped after the failed check above`);
      }
      for (const ctx of [...contexts]) await ctx.close().catch(() => {});
      contexts.clear();
    }
  } finally {
    await browser.close();
  }
  if (!formLoginFailures.size) ok('login form: every sign-in of the flows went through the form');
  else {
    fail('login form: the flows\' sign-ins through the form', `${formLoginFallbacks} failed and were opened by a direct POST instead (${[...formLoginFailures].slice(0, 4).join('; ')})`);
  }
  console.log(`# ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (failures.length) {
    console.log('# failures:');
    for (const f of failures) console.log(`#   ${f}`);
  }
  console.log(`web: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed ? 1 : 0);
}

process.on('unhandledRejection', (e) => {
  fail('web tests: an unhandled error', short(String(e && e.message || e).split('\n')[0], 300));
});

// A hung browser or server must not hang the caller.
setTimeout(() => {
  console.log('FAIL web tests: did not finish within 15 minutes');
  process.exit(1);
}, 15 * 60e3).unref();

main().catch((e) => {
  console.log(`FAIL web tests: ${e && e.stack || e}`);
  process.exit(1);
});
