// The load of scripts/chaos-ha.sh (issue #26): RATE arrivals a second (default 100) for DURATION
// (default 60s) while the script kills the PostgreSQL primary under it. One request per arrival:
//   enter   20%  POST /api/queue {"userId": 1..10000}
//   hold    40%  POST /api/reservations, a random seat 1..2000 of performance 301 for a random
//                user 1..10000, with the ACTIVE token of setup()
//   charge  40%  POST /api/users/{1..10000}/balance/charge {"amount": 1000} with an
//                Idempotency-Key of its own (chaos-ha-<vu>-<iteration>)
// The script judges the run from the console (k6 --console-output):
//   T0 <epoch ms>                                    end of setup()
//   R <start epoch ms> <kind> <status> <ms> <Retry-After 0|1>
//   HELD <reservationId>                             a hold answered 200
//   CHARGED <userId> <key> <balance>                 a charge answered 200
//   UNKNOWN <userId> <key>                           a charge answered anything else (its
//                                                    outcome is unknown: the script retries it)
import http from 'k6/http';
import { BASE_URL, JSON_HEADERS, randomInt, setupToken, tokenHeaders } from '../lib/common.js';

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const RATE = parseInt(__ENV.RATE || '100', 10);

export const options = {
  scenarios: {
    chaos: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: Math.max(50, Math.ceil(RATE / 2)),
      maxVUs: Math.max(300, RATE * 3),
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

function send(kind, call) {
  const start = Date.now();
  const response = call();
  const retryAfter = response.headers['Retry-After'] !== undefined ? 1 : 0;
  console.log(`R ${start} ${kind} ${response.status} ${response.timings.duration.toFixed(2)} ${retryAfter}`);
  return response;
}

export default function (data) {
  const roll = Math.random() * 100;
  const params = (kind, headers) => ({ headers, tags: { kind }, timeout: '20s' });
  if (roll < 20) {
    const body = JSON.stringify({ userId: randomInt(1, 10000) });
    send('enter', () => http.post(`${BASE_URL}/api/queue`, body, params('enter', JSON_HEADERS)));
  } else if (roll < 60) {
    const body = JSON.stringify({ userId: randomInt(1, 10000), concertId: 3, performanceId: 301, seatId: randomInt(1, 2000) });
    const response = send('hold', () => http.post(`${BASE_URL}/api/reservations`, body, params('hold', tokenHeaders(data.token))));
    if (response.status === 200) {
      console.log(`HELD ${response.json().reservationId}`);
    }
  } else {
    const user = randomInt(1, 10000);
    const key = `chaos-ha-${__VU}-${__ITER}`;
    const headers = Object.assign({ 'Idempotency-Key': key }, JSON_HEADERS);
    const response = send('charge', () =>
      http.post(`${BASE_URL}/api/users/${user}/balance/charge`, JSON.stringify({ amount: 1000 }), params('charge', headers)),
    );
    if (response.status === 200) {
      console.log(`CHARGED ${user} ${key} ${response.json().balance}`);
    } else {
      console.log(`UNKNOWN ${user} ${key}`);
    }
  }
}
