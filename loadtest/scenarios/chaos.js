// The load of scripts/chaos-under-load.sh (issue #12, item 2): requests arrive at a constant
// RATE per second (default 300) for DURATION (default 60s) while the script kills and restarts
// Redis and PostgreSQL under it (and, with INSTANCES=2, one of two instances behind HAProxy,
// which BASE_URL then points at). The mix, one
// request per arrival, tagged by kind:
//   enter  25%  POST /api/queue {"userId": 1..10000} (a new or the user's existing token)
//   poll   15%  GET /api/queue with the last token this VU entered (the setup token before one)
//   seats  40%  GET /api/concerts/1/performances/119/seats with the ACTIVE token of setup()
//   hold   20%  POST /api/reservations, a random seat 1..2000 of performance 301 for a random
//               user 1..10000, with the ACTIVE token of setup()
// No thresholds here: the script judges the run from what this one writes to the console
// (k6 --console-output), one line per request and per acknowledged write:
//   T0 <epoch ms>                              end of setup(): the start of the arrivals
//   R <start epoch ms> <kind> <status> <http_req_duration ms> <Retry-After 0|1> <setup token 0|1> <wall ms> <served by>
//     (<served by>: the X-Served-By header the load balancer of INSTANCES=2 adds, the HAProxy
//     server that answered; '-' without a balancer and for the balancer's own answers)
//   HELD <reservationId>                       a hold answered 200
//   TOKEN <token> <activeUntil|null>           an entry answered 200
import http from 'k6/http';
import { BASE_URL, JSON_HEADERS, randomInt, setupToken, tokenHeaders } from '../lib/common.js';

// 409 (seat taken, seat limit) is an expected answer; anything else but 2xx counts as failed.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const RATE = parseInt(__ENV.RATE || '300', 10);

export const options = {
  scenarios: {
    chaos: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: Math.max(50, Math.ceil(RATE / 3)),
      maxVUs: Math.max(300, RATE * 2),
      gracefulStop: '15s',
    },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
};

export function setup() {
  const data = setupToken();
  console.log(`T0 ${Date.now()}`);
  return data;
}

let myToken = null; // the last token this VU was given by an entry

function record(kind, response, start, wall, withSetupToken) {
  const retryAfter = response.headers['Retry-After'] !== undefined ? 1 : 0;
  const servedBy = response.headers['X-Served-By'] || '-';
  console.log(
    `R ${start} ${kind} ${response.status} ${response.timings.duration.toFixed(2)} ${retryAfter} ${withSetupToken ? 1 : 0} ${wall} ${servedBy}`,
  );
}

function send(kind, call, withSetupToken) {
  const start = Date.now();
  const response = call();
  record(kind, response, start, Date.now() - start, withSetupToken);
  return response;
}

export default function (data) {
  const roll = Math.random() * 100;
  const params = (kind, headers) => ({ headers, tags: { kind }, timeout: '10s' });
  if (roll < 25) {
    const body = JSON.stringify({ userId: randomInt(1, 10000) });
    const response = send('enter', () => http.post(`${BASE_URL}/api/queue`, body, params('enter', JSON_HEADERS)), false);
    if (response.status === 200) {
      const entry = response.json();
      myToken = entry.token;
      console.log(`TOKEN ${entry.token} ${entry.activeUntil || 'null'}`);
    }
  } else if (roll < 40) {
    const token = myToken || data.token;
    send('poll', () => http.get(`${BASE_URL}/api/queue`, params('poll', { 'Queue-Token': token })), token === data.token);
  } else if (roll < 80) {
    send(
      'seats',
      () => http.get(`${BASE_URL}/api/concerts/1/performances/119/seats`, params('seats', tokenHeaders(data.token))),
      true,
    );
  } else {
    const body = JSON.stringify({ userId: randomInt(1, 10000), concertId: 3, performanceId: 301, seatId: randomInt(1, 2000) });
    const response = send(
      'hold',
      () => http.post(`${BASE_URL}/api/reservations`, body, params('hold', tokenHeaders(data.token))),
      true,
    );
    if (response.status === 200) {
      console.log(`HELD ${response.json().reservationId}`);
    }
  }
}
