// Queue storm through the gate against bots, beside the same storm without it, in one run:
// for STORM_SECONDS (default 20), STORM_VUS clients (default 25) enter a line as fast as they can
// in a room that asks for no proof while as many do the same in a room that asks for a proof of
// work at
// GATE_DIFFICULTY (default 100: low, so that the load generator, on the same cores, measures the
// server's cost of the gate rather than its own hashing). Each entry in the gated room fetches a
// challenge (GET /api/rooms/{room}/challenge), solves it with k6/crypto's SHA-256 as an ALTCHA
// client does, and enters with the proof; every entry then leaves (DELETE /api/queue). Entries
// of the open room fetch their room's (trivial) challenge too and do not use it, so that both
// groups make the same requests and the ratio measures what the gate adds: the server's check
// and spend of a proof, and the client's solve. Both groups run at once, so that they share
// whatever else the machine does at the time (on a shared machine, two phases one after the
// other measured the neighbours' builds more than the gate). Prints entries per second of each
// group and their ratio (goal: gated / open >= 0.8).
// Needs the admin API (APP__ADMIN__TOKEN, at least 32 characters, in k6's environment too): it
// creates two passthrough rooms, named after the run, and deletes them at the end. Run the stack
// with APP__QUEUE__ENTRY_RATE_PER_CLIENT=0: k6 is one client address.
import http from 'k6/http';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { BASE_URL, JSON_HEADERS, countServerError } from '../lib/common.js';

const VUS = parseInt(__ENV.STORM_VUS || '25', 10);
const SECONDS = parseInt(__ENV.STORM_SECONDS || '20', 10);
const DIFFICULTY = parseInt(__ENV.GATE_DIFFICULTY || '100', 10);
const ADMIN_TOKEN = __ENV.APP__ADMIN__TOKEN || __ENV.ADMIN_TOKEN || '';

const entriesOpen = new Counter('entries_open');
const entriesGated = new Counter('entries_gated');
const refused = new Counter('gate_refused');
const solveMs = new Trend('solve_ms', true);

export const options = {
  scenarios: {
    open: {
      executor: 'constant-vus', vus: VUS, duration: `${SECONDS}s`, exec: 'enterOpen',
    },
    gated: {
      executor: 'constant-vus', vus: VUS, duration: `${SECONDS}s`, exec: 'enterGated',
    },
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
  thresholds: {
    server_errors: ['count==0'],
    gate_refused: ['count==0'],
    'http_req_duration{name:POST /api/queue}': ['p(99)<250'],
  },
};

function admin(method, path, body) {
  return http.request(method, `${BASE_URL}${path}`, body ? JSON.stringify(body) : null, {
    headers: Object.assign({ Authorization: `Bearer ${ADMIN_TOKEN}` }, JSON_HEADERS),
    tags: { name: `${method} ${path.split('/').slice(0, 4).join('/')}` },
  });
}

export function setup() {
  if (ADMIN_TOKEN.length < 32) throw new Error('set APP__ADMIN__TOKEN (the server\'s admin token)');
  const stamp = Date.now().toString(36);
  const rooms = { open: `storm-open-${stamp}`, gated: `storm-gated-${stamp}` };
  for (const [kind, id] of Object.entries(rooms)) {
    const created = admin('POST', '/api/admin/rooms', {
      id, name: `Queue storm, gate ${kind}`, performanceIds: [], mode: 'passthrough',
      challengeDifficulty: kind === 'gated' ? DIFFICULTY : 0,
    });
    if (created.status !== 201) throw new Error(`creating room ${id}: ${created.status} ${created.body}`);
  }
  return rooms;
}

/** What an ALTCHA client does: tries every number until the hash matches. */
function solve(challenge) {
  for (let n = 0; n <= challenge.maxnumber; n += 1) {
    if (crypto.sha256(challenge.salt + n, 'hex') === challenge.challenge) return n;
  }
  return -1;
}

function enter(room, proof) {
  const body = proof === undefined ? { roomId: room } : { roomId: room, proof };
  const response = countServerError(http.post(`${BASE_URL}/api/queue`, JSON.stringify(body), {
    headers: JSON_HEADERS, tags: { name: 'POST /api/queue' },
  }));
  if (!check(response, { 'entered': (r) => r.status === 200 })) {
    if (response.status === 403) refused.add(1);
    return false;
  }
  countServerError(http.del(`${BASE_URL}/api/queue`, null, {
    headers: { 'Queue-Token': response.json('token') }, tags: { name: 'DELETE /api/queue' },
  }));
  return true;
}

function challengeOf(room) {
  return countServerError(http.get(`${BASE_URL}/api/rooms/${room}/challenge`, {
    tags: { name: 'GET /api/rooms/{roomId}/challenge' },
  })).json();
}

export function enterOpen(rooms) {
  challengeOf(rooms.open);
  if (enter(rooms.open)) entriesOpen.add(1);
}

export function enterGated(rooms) {
  const challenge = challengeOf(rooms.gated);
  const started = Date.now();
  const number = solve(challenge);
  solveMs.add(Date.now() - started);
  const proof = encoding.b64encode(JSON.stringify({
    algorithm: challenge.algorithm, challenge: challenge.challenge, number,
    salt: challenge.salt, signature: challenge.signature, took: Date.now() - started,
  }));
  if (enter(rooms.gated, proof)) entriesGated.add(1);
}

export function teardown(rooms) {
  for (const id of Object.values(rooms)) admin('DELETE', `/api/admin/rooms/${id}`);
}

export function handleSummary(data) {
  const count = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
  const open = count('entries_open') / SECONDS;
  const gated = count('entries_gated') / SECONDS;
  const entry = data.metrics['http_req_duration{name:POST /api/queue}'];
  const p99 = entry && entry.values['p(99)'] !== undefined ? entry.values['p(99)'].toFixed(1) : '?';
  const solve = data.metrics.solve_ms;
  const lines = [
    `queue-storm-gated: ${VUS} clients without the gate beside ${VUS} with it, ${SECONDS} s, difficulty ${DIFFICULTY}`,
    `  entries/s without the gate: ${open.toFixed(1)}`,
    `  entries/s with the gate:    ${gated.toFixed(1)} (challenge + solve + entry + leave per entry)`,
    `  ratio gated / open:         ${(open > 0 ? gated / open : 0).toFixed(2)} (goal >= 0.8)`,
    `  POST /api/queue p(99):      ${p99} ms (both groups)`,
    `  solve in k6 (mean):         ${solve ? solve.values.avg.toFixed(1) : '?'} ms`,
    `  refused proofs:             ${count('gate_refused')}, server errors: ${count('server_errors')}`,
  ];
  return { stdout: `${lines.join('\n')}\n` };
}
