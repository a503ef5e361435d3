// Shared by the scenarios: where the stack is, and the calls every client makes.
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const JSON_HEADERS = { 'Content-Type': 'application/json' };

// Any 5xx anywhere is a failure of the run, whatever else a scenario expects.
export const serverErrors = new Counter('server_errors');

export function countServerError(response) {
  if (response.status >= 500 || response.status === 0) {
    serverErrors.add(1, { status: String(response.status), url: response.request.url });
  }
  return response;
}

export function tokenHeaders(token, extra) {
  return Object.assign({ 'Queue-Token': token }, JSON_HEADERS, extra || {});
}

export function randomInt(min, max) {
  return min + Math.floor(Math.random() * (max - min + 1));
}

// Enters the queue (bound to `userId` when given) and returns the parsed answer.
export function enterQueue(userId) {
  const body = userId ? JSON.stringify({ userId }) : null;
  const response = countServerError(
    http.post(`${BASE_URL}/api/queue`, body, { headers: JSON_HEADERS, tags: { name: 'POST /api/queue' } }),
  );
  if (response.status !== 200) {
    return { status: `HTTP_${response.status}`, response };
  }
  return response.json();
}

// Polls until the token is ACTIVE (or `maxSeconds` pass); returns the last answer.
export function waitUntilActive(entry, maxSeconds) {
  let state = entry;
  const deadline = Date.now() + maxSeconds * 1000;
  while (state.status === 'WAITING' && Date.now() < deadline) {
    sleep(1);
    const response = countServerError(
      http.get(`${BASE_URL}/api/queue`, {
        headers: { 'Queue-Token': entry.token },
        tags: { name: 'GET /api/queue' },
      }),
    );
    if (response.status !== 200) {
      return { status: `HTTP_${response.status}`, response };
    }
    state = response.json();
  }
  return state;
}

// One ACTIVE token for a whole scenario, as the published scenarios take in their setup.
export function setupToken() {
  const entry = waitUntilActive(enterQueue(null), 60);
  if (entry.status !== 'ACTIVE') {
    throw new Error(`could not get an ACTIVE queue token: ${JSON.stringify(entry.status)}`);
  }
  return { token: entry.token };
}

// The published ramp: 150 VUs growing to 200 over 60 s, then 10 s down.
export const PUBLISHED_RAMP = {
  executor: 'ramping-vus',
  startVUs: 150,
  stages: [
    { duration: '60s', target: 200 },
    { duration: '10s', target: 0 },
  ],
  gracefulRampDown: '5s',
};
