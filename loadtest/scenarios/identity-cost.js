// What identity costs a protected request (issue #24, "Measured"): the same request, GET
// /api/users/{id}/balance for the caller's own user, against a server with identity off
// (OFF_URL, no token) and one with identity on (ON_URL, a bearer JWT per user), in one run.
// Phases alternate off, on, off, on (PHASE_SECONDS each, default 20, with a 2 s gap), each with
// VUS closed-loop clients (default 16) asking as fast as answers come: requests per second is
// then what the server (and the load generator, on the same cores) can do, and on/off is what
// verifying the JWT costs. Alternating keeps a neighbour's burst of work from landing on one
// side only. Used by scripts/identity-bench.sh, which starts both servers and mints the tokens.
//   TOKENS: a JSON file of bearer tokens (mint_tokens' tokens.json); setup learns each one's
//   user from GET /api/me on ON_URL. USERS_OFF: the first user id of the off side's users
//   (demo users), as many as there are tokens.
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const OFF_URL = (__ENV.OFF_URL || 'http://127.0.0.1:18101').replace(/\/$/, '');
const ON_URL = (__ENV.ON_URL || 'http://127.0.0.1:18102').replace(/\/$/, '');
const SECONDS = parseInt(__ENV.PHASE_SECONDS || '20', 10);
const VUS = parseInt(__ENV.VUS || '16', 10);
const FIRST_OFF_USER = parseInt(__ENV.USERS_OFF || '1', 10);
const TOKENS = JSON.parse(open(__ENV.TOKENS));
const PHASES = ['off1', 'on1', 'off2', 'on2'];

const answered = new Counter('balance_ok');
const refused = new Counter('balance_not_ok');
const latency = new Trend('balance_ms', true);

const scenarios = {};
const thresholds = { balance_not_ok: ['count==0'] };
PHASES.forEach((phase, i) => {
  scenarios[phase] = {
    executor: 'constant-vus',
    vus: VUS,
    duration: `${SECONDS}s`,
    startTime: `${i * (SECONDS + 2)}s`,
    gracefulStop: '2s',
    exec: phase.startsWith('on') ? 'identityOn' : 'identityOff',
  };
  // Thresholds that always pass: they make k6 keep each phase's own figures for the summary.
  thresholds[`balance_ms{scenario:${phase}}`] = ['p(99)>=0'];
  thresholds[`balance_ok{scenario:${phase}}`] = ['count>=0'];
});

export const options = {
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(99)', 'max'],
  setupTimeout: '120s',
};

export function setup() {
  // The server fetches the issuer's keys in the background at start; until it has them (a
  // failed first fetch is tried again after 5 s) it answers 503 with Retry-After.
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const probe = http.get(`${ON_URL}/api/me`, { headers: { Authorization: `Bearer ${TOKENS[0]}` } });
    if (probe.status !== 503) break;
    sleep(Number(probe.headers['Retry-After']) || 1);
  }
  const users = [];
  for (let start = 0; start < TOKENS.length; start += 50) {
    const batch = TOKENS.slice(start, start + 50).map((token) => ({
      method: 'GET',
      url: `${ON_URL}/api/me`,
      params: { headers: { Authorization: `Bearer ${token}` } },
    }));
    for (const response of http.batch(batch)) {
      if (response.status !== 200) fail(`GET /api/me: ${response.status} ${response.body}`);
      users.push(response.json('userId'));
    }
  }
  // Each phase's first requests of a token then find its account in memory, as a returning
  // caller does: the measured cost is the signature check, not the account's first sight.
  return { users };
}

function ask(url, params) {
  const response = http.get(url, params);
  if (check(response, { 'balance 200': (r) => r.status === 200 })) {
    answered.add(1);
    latency.add(response.timings.duration);
  } else {
    refused.add(1);
  }
}

function pick(count) {
  return ((__VU - 1) * 7919 + __ITER) % count;
}

export function identityOff() {
  const i = pick(TOKENS.length);
  ask(`${OFF_URL}/api/users/${FIRST_OFF_USER + i}/balance`, { tags: { name: 'balance' } });
}

export function identityOn(data) {
  const i = pick(TOKENS.length);
  ask(`${ON_URL}/api/users/${data.users[i]}/balance`, {
    headers: { Authorization: `Bearer ${TOKENS[i]}` },
    tags: { name: 'balance' },
  });
}

export function handleSummary(data) {
  const row = (phase) => {
    const trend = data.metrics[`balance_ms{scenario:${phase}}`].values;
    const count = data.metrics[`balance_ok{scenario:${phase}}`].values.count;
    return { phase, perSecond: count / SECONDS, p50: trend.med, p99: trend['p(99)'] };
  };
  const rows = PHASES.map(row);
  const mean = (side) => {
    const own = rows.filter((r) => r.phase.startsWith(side));
    return own.reduce((sum, r) => sum + r.perSecond, 0) / own.length;
  };
  const lines = [
    `| phase | identity | req/s | p50 ms | p99 ms |`,
    `|---|---|---:|---:|---:|`,
    ...rows.map((r) => `| ${r.phase} | ${r.phase.startsWith('on') ? 'on (RS256)' : 'off'} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`),
    '',
    `${VUS} clients, ${SECONDS} s per phase. Not 200: ${data.metrics.balance_not_ok ? data.metrics.balance_not_ok.values.count : 0}.`,
    `Mean req/s off ${mean('off').toFixed(0)}, on ${mean('on').toFixed(0)}: **on / off = ${(mean('on') / mean('off')).toFixed(3)}** (goal >= 0.9).`,
    '',
  ].join('\n');
  return { stdout: lines, [__ENV.SUMMARY_JSON || '/dev/null']: JSON.stringify(data) };
}
