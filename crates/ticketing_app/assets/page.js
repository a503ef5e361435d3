// The waiting room and seat picker. Plain JavaScript, no build step, no dependencies: it talks
// to the same JSON API as every other client (see docs/api.md). `/?room=<id>` enters that
// waiting room; `/` lists the rooms, or enters the room `default` when it is the only one.
(() => {
  'use strict';

  // ---- Settings -------------------------------------------------------------------------------

  /** Most seats picked at once (the server's default APP__RESERVATION__MAX_SEATS_PER_HOLD). */
  const MAX_PICK = 4;
  /** When the server does not say when to poll again. */
  const DEFAULT_POLL_SECONDS = 2;
  /** Longest pause between two polls, whatever the server says (it keeps a place alive). */
  const LONGEST_POLL_SECONDS = 30;
  /** When a 429 or 503 carries no Retry-After. */
  const DEFAULT_RETRY_SECONDS = 2;
  /** Entering the line again by itself at most this often; after that the person decides. */
  const REENTRY_GUARD_MS = 10000;
  /** How often the list of waiting lines refreshes while shown (rooms open and close). */
  const ROOM_LIST_REFRESH_SECONDS = 30;
  /** The room of `/` without rooms, and of every performance no other room covers. */
  const DEFAULT_ROOM = 'default';
  /** What the server accepts as a room id (docs/api.md, "Waiting rooms"). */
  const ROOM_ID_PATTERN = /^[a-z0-9-]{1,40}$/;

  // ---- Small helpers --------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'className') node.className = value;
      else if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  const won = new Intl.NumberFormat('ko-KR', { style: 'currency', currency: 'KRW' });
  const money = (amount) => won.format(amount);
  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
  const clockTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s <= 1 ? 'about a second' : `about ${s} seconds`;
    const minutes = Math.round(s / 60);
    if (minutes < 60) return minutes === 1 ? 'about a minute' : `about ${minutes} minutes`;
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    return `about ${hours} h ${rest} min`;
  }

  function clock(ms) {
    // Rounded down: never promise a second the hold may not have.
    const total = Math.max(0, Math.floor(ms / 1000));
    const minutes = Math.floor(total / 60);
    const seconds = total % 60;
    return `${minutes}:${String(seconds).padStart(2, '0')}`;
  }

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- Who, and what this tab remembers ---------------------------------------------------------

  const params = new URLSearchParams(window.location.search);
  const userParam = params.get('user');
  const parsedUser = userParam === null ? 1 : Number(userParam);
  const userIsValid = Number.isSafeInteger(parsedUser) && parsedUser > 0;
  const user = userIsValid ? parsedUser : 1;
  // `?room=` with nothing after it is taken as no room at all: the list. Room ids are lower
  // case, so a link typed as `?room=Golden-Hour` still finds its room.
  const askedRoom = (params.get('room') || '').trim().toLowerCase() || null;
  const roomId = askedRoom === null ? DEFAULT_ROOM : askedRoom;

  const memory = {
    // Per room: a tab that moves between two rooms' pages must keep one token and one set of
    // holds per room, or each room would overwrite (and then misuse) the other's token. The
    // room default keeps the key of the page before rooms, so a place taken then is found.
    key: (name) => (roomId === DEFAULT_ROOM
      ? `ticketing:user-${user}:${name}`
      : `ticketing:user-${user}:room-${roomId}:${name}`),
    get(name) {
      try {
        const text = window.sessionStorage.getItem(this.key(name));
        return text === null ? null : JSON.parse(text);
      } catch (_) {
        return null;
      }
    },
    set(name, value) {
      try {
        if (value === null || value === undefined) window.sessionStorage.removeItem(this.key(name));
        else window.sessionStorage.setItem(this.key(name), JSON.stringify(value));
      } catch (_) {
        // Storage full or refused: the page still works, it only forgets on reload.
      }
    },
  };

  const state = {
    token: memory.get('token'),
    status: null,
    position: null,
    firstPosition: memory.get('firstPosition') || 0,
    pollTimer: null,
    concerts: [],
    concert: null,
    performance: null,
    seats: [],
    picked: new Set(),
    holds: memory.get('holds') || [],
    balance: null,
    chargeKey: memory.get('chargeKey'),
    countdownTimer: null,
    warnedLastMinute: false,
    clockOffsetMs: 0,
    lastAutoReentry: 0,
    paying: false,
    // The waiting rooms as last listed; null while unknown (the server then judges alone).
    rooms: null,
    roomsTimer: null,
    performances: [],
  };

  function rememberToken(token) {
    state.token = token;
    memory.set('token', token);
  }

  function rememberHolds() {
    memory.set('holds', state.holds.length ? state.holds : null);
  }

  // ---- Talking to the API -----------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, code, retryAfterSeconds, problem) {
      super(`${status} ${code}`);
      this.status = status;
      this.code = code;
      this.retryAfterSeconds = retryAfterSeconds;
      // The problem document, for the fields some codes carry (opensAt of ROOM_CLOSED).
      this.problem = problem || {};
    }

    get retryable() {
      return this.status === 0 || this.status === 429 || this.status === 503;
    }

    get tokenLost() {
      return ['TOKEN_INVALID', 'TOKEN_MISSING', 'TOKEN_USER_MISMATCH'].includes(this.code);
    }
  }

  function retryAfter(header) {
    if (!header) return null;
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, seconds);
    const at = Date.parse(header);
    return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
  }

  function noteServerClock(response) {
    const date = Date.parse(response.headers.get('Date') || '');
    // The Date header has whole seconds: take the middle of that second.
    if (!Number.isNaN(date)) state.clockOffsetMs = date + 500 - Date.now();
  }

  const serverNow = () => Date.now() + state.clockOffsetMs;

  async function api(method, path, options = {}) {
    const headers = { Accept: 'application/json' };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.token !== false && state.token) headers['Queue-Token'] = state.token;
    if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (_) {
      throw new ApiFailure(0, 'NETWORK', DEFAULT_RETRY_SECONDS);
    }
    noteServerClock(response);
    let data = null;
    try {
      const text = await response.text();
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (response.ok) return data;
    const code = data && typeof data.code === 'string' ? data.code : `HTTP_${response.status}`;
    const wait = retryAfter(response.headers.get('Retry-After'));
    const problem = data && typeof data === 'object' ? data : null;
    throw new ApiFailure(response.status, code, wait === null ? DEFAULT_RETRY_SECONDS : wait, problem);
  }

  // ---- Telling the person -----------------------------------------------------------------------

  /** Each line is a sentence, or a node when it holds a link. */
  function showError(...lines) {
    const box = $('error');
    box.replaceChildren(...lines.filter(Boolean)
      .map((line) => (line instanceof Node ? el('p', {}, line) : el('p', { text: line }))));
    box.hidden = false;
    // Seen even when the person had scrolled down to the seats (screen readers hear role=alert).
    box.scrollIntoView({ block: 'nearest' });
  }

  function clearError() {
    const box = $('error');
    box.hidden = true;
    box.replaceChildren();
  }

  function notice(text) {
    $('notice').textContent = text || '';
  }

  function announce(text) {
    const announcer = $('announcer');
    announcer.textContent = '';
    // A fresh node, so the same sentence twice is read twice.
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  }

  /** Plain words for a failure that is not about the token; `what` says what was being done. */
  function explain(failure, what) {
    const wait = Math.ceil(failure.retryAfterSeconds || DEFAULT_RETRY_SECONDS);
    switch (failure.code) {
      case 'NETWORK':
        return [`We could not reach the ticket service while ${what}.`,
          'Check your connection, then try again.'];
      case 'UNAVAILABLE':
      case 'HTTP_503':
        return [`The ticket service is very busy right now and could not finish ${what}.`,
          `Please try again in ${wait} second${wait === 1 ? '' : 's'}.`];
      case 'RATE_LIMITED':
      case 'HTTP_429':
        return ['Too many requests came from your connection in a short time.',
          `Please wait ${wait} second${wait === 1 ? '' : 's'} and try again.`];
      case 'NOT_FOUND':
        return [`We could not find what you asked for while ${what}: it may have been removed.`,
          'Please go back a step and choose again.'];
      case 'INVALID_REQUEST':
        return [`The ticket service did not understand the request while ${what}.`,
          'Please reload the page and try again.'];
      case 'ROOM_CLOSED':
        return [`This waiting line takes no new entries, so we could not finish ${what}.`,
          'Seats you hold stay yours until their time runs out; other sales may still be open.'];
      case 'TOKEN_WRONG_ROOM':
        return [`This date is sold through another waiting line, so we could not finish ${what}.`,
          'Please choose another date.'];
      case 'CHALLENGE_REQUIRED':
      case 'CHALLENGE_FAILED':
      case 'CHALLENGE_UNSOLVED':
        return [`We could not check your browser while ${what}.`,
          'Please try again; if it keeps happening, reload the page.'];
      case 'IDEMPOTENCY_CONFLICT':
        return ['That request is still being processed.',
          'Please wait a few seconds and press the button again; you will not be charged twice.'];
      default:
        return [`Something went wrong on our side while ${what}.`,
          'Please try again in a moment; if it keeps happening, reload the page.'];
    }
  }

  // ---- Showing one step at a time ---------------------------------------------------------------

  const steps = ['concerts', 'performances', 'seats', 'hold', 'done'];

  function showSteps(visible, focusId) {
    for (const id of steps) $(id).hidden = !visible.includes(id);
    if (focusId) {
      const heading = $(focusId);
      if (heading) heading.focus({ preventScroll: false });
    }
  }

  function busy(button, text) {
    const previous = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    if (text) button.textContent = text;
    return () => {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      if (text) button.textContent = previous;
    };
  }

  // ---- Waiting rooms ----------------------------------------------------------------------------

  /** This page for `room` (null: the list), keeping `?user=` as it was given. */
  function pageLink(room) {
    const query = new URLSearchParams();
    if (room !== null) query.set('room', room);
    if (userParam !== null) query.set('user', userParam);
    const text = query.toString();
    return text ? `/?${text}` : '/';
  }

  /** One sentence of an error or a notice that holds a link. */
  function sentence(...parts) {
    return el('span', {}, ...parts);
  }

  /** A server time for people: their own clock and time zone, and how far off it is. */
  function when(text) {
    const at = Date.parse(text || '');
    if (Number.isNaN(at)) return null;
    const local = dateTime.format(new Date(at - state.clockOffsetMs));
    const left = (at - serverNow()) / 1000;
    return left > 0 ? `${local} (in ${duration(left)})` : local;
  }

  /** The rooms, as the server lists them now; on failure what was known stays. */
  async function loadRooms() {
    try {
      const rooms = await api('GET', '/api/rooms', { token: false });
      if (Array.isArray(rooms)) state.rooms = rooms.filter((room) => room && typeof room.id === 'string');
    } catch (_) {
      // The list only helps: entering a line and the seat maps are judged by the server anyway.
    }
    return state.rooms;
  }

  const findRoom = (id) => (state.rooms ? state.rooms.find((room) => room.id === id) || null : null);

  const hasOtherRooms = () => Boolean(state.rooms && state.rooms.some((room) => room.id !== DEFAULT_ROOM));

  /** A room's name for people; the room default's stored name ("Default") means nothing to them. */
  function roomTitle(room) {
    if (room.id === DEFAULT_ROOM && (!room.name || room.name === 'Default')) {
      return hasOtherRooms() ? 'All other concerts' : 'All concerts';
    }
    return room.name || room.id;
  }

  /** "the line for …", to follow "join". */
  function linePhrase(room) {
    const title = roomTitle(room);
    return room.id === DEFAULT_ROOM && room.name === 'Default'
      ? `the line for ${title.toLowerCase()}` : `the line for ${title}`;
  }

  /** The room whose turns open `performanceId`'s seat map; null when the page cannot tell. */
  function roomSelling(performanceId) {
    if (!state.rooms) return null;
    const covering = state.rooms.find((room) => room.id !== DEFAULT_ROOM &&
      Array.isArray(room.performanceIds) && room.performanceIds.includes(performanceId));
    return covering || findRoom(DEFAULT_ROOM);
  }

  /** Whether this tab's turn opens the date; when unsure, yes, and the server has the last word. */
  function soldHere(performanceId) {
    if (!findRoom(roomId)) return true;
    const seller = roomSelling(performanceId);
    return seller === null || seller.id === roomId;
  }

  /** [status, what it means for the fan] in plain words. */
  function roomStatusWords(room) {
    const opens = when(room.opensAt);
    const closes = when(room.closesAt);
    const closedAlready = room.closesAt && Date.parse(room.closesAt) <= serverNow();
    switch (room.status) {
      case 'OPEN':
        return ['On sale now', closes ? `Takes new entries until ${closes}.` : 'Join the line to get your turn.'];
      case 'PREQUEUE':
        return [opens ? `Opens ${opens}` : 'Opens soon',
          'You can join the line now: everyone who arrives before the opening gets a place by a fair draw.'];
      case 'PAUSED':
        return ['Paused for a moment', 'You can join the line and keep your place; it moves again when the sale resumes.'];
      case 'CLOSED':
        if (opens) return [`Not open yet: opens ${opens}`, 'Come back then to join the line.'];
        if (closedAlready) return ['Closed', `Sales in this line ended ${closes}.`];
        return ['Closed', 'This line takes no new entries right now.'];
      default:
        return [String(room.status || 'Unknown'), ''];
    }
  }

  function roomItem(room) {
    const [status, meaning] = roomStatusWords(room);
    const content = [
      el('span', { className: 'title', text: roomTitle(room) }),
      el('span', { className: 'room-status', 'data-testid': 'room-status', text: status }),
      meaning ? el('span', { className: 'meta', text: meaning }) : null,
    ];
    // A closed line has nothing to enter: it is said, not offered.
    const body = room.status === 'CLOSED'
      ? el('div', { className: 'room-card closed' }, ...content)
      : el('a', { className: 'room-card', href: pageLink(room.id), 'data-testid': 'room-link' }, ...content);
    return el('li', { 'data-testid': 'room', 'data-room-id': room.id, 'data-status': room.status }, body);
  }

  function renderRoomList() {
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest('[data-room-id]') : null;
    const focusedRoom = focused ? focused.dataset.roomId : null;
    // The named on-sales first, by name as people look for them; the room default, which
    // holds what is left, last.
    const named = state.rooms.filter((room) => room.id !== DEFAULT_ROOM)
      .sort((a, b) => roomTitle(a).localeCompare(roomTitle(b)));
    const ordered = [...named, ...state.rooms.filter((room) => room.id === DEFAULT_ROOM)];
    $('room-list').replaceChildren(...ordered.map(roomItem));
    if (focusedRoom !== null) {
      const again = $('room-list').querySelector(`[data-room-id="${CSS.escape(focusedRoom)}"] a`);
      if (again) again.focus();
    }
  }

  /** "in about …" goes stale while the list shows: the words are redone in place. */
  function refreshRoomTimes() {
    for (const room of state.rooms || []) {
      const item = $('room-list').querySelector(`[data-room-id="${CSS.escape(room.id)}"]`);
      if (!item) continue;
      const [status, meaning] = roomStatusWords(room);
      const statusNode = item.querySelector('.room-status');
      const meaningNode = item.querySelector('.meta');
      if (statusNode && statusNode.textContent !== status) statusNode.textContent = status;
      if (meaningNode && meaningNode.textContent !== meaning) meaningNode.textContent = meaning;
    }
  }

  function showRoomList() {
    $('line').hidden = true;
    showSteps([]);
    $('rooms').hidden = false;
    document.title = 'Tickets: choose a waiting line';
    renderRoomList();
    if (state.roomsTimer !== null) window.clearTimeout(state.roomsTimer);
    const refresh = async () => {
      if (document.visibilityState === 'visible') {
        const before = JSON.stringify(state.rooms);
        await loadRooms();
        // Rebuilt only when a room changed: a rebuild moves a screen reader's reading position.
        if (state.rooms && JSON.stringify(state.rooms) !== before) renderRoomList();
        else refreshRoomTimes();
      }
      state.roomsTimer = window.setTimeout(refresh, ROOM_LIST_REFRESH_SECONDS * 1000);
    };
    state.roomsTimer = window.setTimeout(refresh, ROOM_LIST_REFRESH_SECONDS * 1000);
  }

  function showRoomBanner() {
    const room = findRoom(roomId);
    const name = room ? roomTitle(room) : roomId;
    $('room-name').textContent = name;
    $('all-rooms-link').href = pageLink(null);
    $('room-banner').hidden = false;
    document.title = `Tickets: ${name}`;
  }

  const allLinesLink = () => el('a', { href: pageLink(null), 'data-testid': 'all-rooms-link' }, 'see all waiting lines');

  function unknownRoom() {
    stopPolling();
    $('room-banner').hidden = true;
    $('line').hidden = true;
    showSteps([]);
    showError(`There is no waiting line called \u201c${askedRoom}\u201d: the link may be mistyped, or the sale may be over.`,
      sentence('To find your concert, ', allLinesLink(), '.'));
    // The lines that do exist, right here: one step less for the fan.
    if (hasOtherRooms()) showRoomList();
    document.title = 'Tickets: no such waiting line';
  }

  function roomClosed(failure) {
    const room = findRoom(roomId);
    const name = room ? roomTitle(room) : roomId;
    const opens = when(failure.problem.opensAt);
    const ended = room && room.closesAt && Date.parse(room.closesAt) <= serverNow() ? when(room.closesAt) : null;
    renderLine(null);
    $('queue-status-words').textContent = 'This line is closed.';
    // Nothing to count or wait for, and nothing to keep the tab open for.
    for (const id of ['position-fact', 'wait-fact', 'line-explainer', 'queue-progress']) $(id).hidden = true;
    let first;
    let next;
    if (opens) {
      first = `The waiting line for ${name} is not open yet.`;
      next = `It opens ${opens}. Come back then and press \u201cJoin the line\u201d.`;
    } else if (ended) {
      first = `The waiting line for ${name} is closed: its sale ended ${ended}.`;
      next = 'It takes no new entries.';
    } else {
      first = `The waiting line for ${name} is closed: it takes no new entries right now.`;
      next = 'Please try again later; press \u201cJoin the line\u201d to check.';
    }
    showError(first, next, sentence('Other sales may be open: ', allLinesLink(), '.'));
    $('join-button').hidden = false;
  }

  /** A seat map or hold refused to this room's turn: the date is sold through another line. */
  function wrongRoom() {
    const seller = state.performance ? roomSelling(state.performance.id) : null;
    const elsewhere = seller && seller.id !== roomId ? seller : null;
    state.performance = null;
    state.picked.clear();
    $('seats').hidden = true;
    showError('This date is sold through another waiting line, so your turn in this line cannot open it.',
      elsewhere
        ? sentence('To buy it, join ', el('a', { href: pageLink(elsewhere.id) }, linePhrase(elsewhere)),
          ', or choose another date here.')
        : 'Please choose another date.');
    if (state.concert) renderPerformances();
  }

  // ---- The line ---------------------------------------------------------------------------------

  function stopPolling() {
    if (state.pollTimer !== null) window.clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  function schedule(seconds, what) {
    stopPolling();
    const clamped = Math.min(Math.max(seconds, 1), LONGEST_POLL_SECONDS);
    state.pollTimer = window.setTimeout(what, clamped * 1000);
  }

  /** The room is named only when the page was asked for one: `/` enters as before rooms. */
  function entryBody() {
    return askedRoom === null ? { userId: user } : { userId: user, roomId };
  }

  // ---- The gate against bots: a proof of work at the entrance (docs/api.md) --------------------

  /** Whether this room asks for a proof of work at entry: learned from a 403 CHALLENGE_REQUIRED. */
  let proofAsked = false;

  /**
   * Fetches a challenge of this room and solves it in a Web Worker (WebCrypto), saying that it
   * is working, with its progress; resolves to the proof: base64 of ALTCHA's payload.
   */
  async function solveChallenge() {
    const challenge = await api('GET', `/api/rooms/${encodeURIComponent(roomId)}/challenge`,
      { token: false });
    const words = $('queue-status-words');
    const checking = 'Checking your browser\u2026';
    words.textContent = checking;
    notice('Checking your browser before you join the line. This usually takes a second or two.');
    const started = Date.now();
    const number = await new Promise((resolve, reject) => {
      const worker = new Worker('/assets/pow-worker.js');
      let spoken = 0;
      const fail = () => {
        worker.terminate();
        reject(new ApiFailure(0, 'CHALLENGE_UNSOLVED', DEFAULT_RETRY_SECONDS));
      };
      worker.onerror = fail;
      worker.onmessage = (event) => {
        const message = event.data || {};
        if (typeof message.progress === 'number') {
          const percent = Math.min(99, Math.floor(message.progress * 100));
          words.textContent = `${checking} ${percent}%`;
          // Screen readers hear it every quarter, not at every step.
          if (percent - spoken >= 25) {
            spoken = percent;
            notice(`Checking your browser\u2026 ${percent}% of the longest it can take.`);
          }
          return;
        }
        worker.terminate();
        if (Number.isInteger(message.number)) resolve(message.number);
        else fail();
      };
      worker.postMessage(challenge);
    });
    notice('Your browser is checked.');
    const payload = {
      algorithm: challenge.algorithm,
      challenge: challenge.challenge,
      number,
      salt: challenge.salt,
      signature: challenge.signature,
      took: Date.now() - started,
    };
    return window.btoa(JSON.stringify(payload));
  }

  /**
   * POST /api/queue with this page's entry, and with a proof of work when the room asks for one.
   * A refused proof is solved afresh (the operator may have raised the difficulty meanwhile),
   * a couple of times at most.
   */
  async function enterLine() {
    for (let attempt = 0; ; attempt += 1) {
      const body = entryBody();
      if (proofAsked) body.proof = await solveChallenge();
      try {
        return await api('POST', '/api/queue', { body, token: false });
      } catch (failure) {
        const gate = failure.code === 'CHALLENGE_REQUIRED' || failure.code === 'CHALLENGE_FAILED';
        if (!gate || attempt >= 2) throw failure;
        proofAsked = true;
      }
    }
  }

  // ---- Joining, polling and leaving the line ----------------------------------------------------

  async function joinLine() {
    stopPolling();
    $('join-button').hidden = true;
    $('queue-progress').hidden = false;
    $('queue-status-words').textContent = 'Getting you a place\u2026';
    try {
      const view = await enterLine();
      await adoptView(view);
    } catch (failure) {
      if (failure.code === 'ROOM_CLOSED') {
        roomClosed(failure);
      } else if (failure.code === 'NOT_FOUND' && askedRoom !== null) {
        unknownRoom();
      } else if (failure.retryable) {
        const [first] = explain(failure, 'getting you a place in line');
        const wait = Math.ceil(failure.retryAfterSeconds);
        showError(first, `We will try again by ourselves in ${wait} second${wait === 1 ? '' : 's'}.`);
        schedule(failure.retryAfterSeconds, joinLine);
      } else {
        showError(...explain(failure, 'getting you a place in line'));
        $('join-button').hidden = false;
      }
    }
  }

  async function pollLine() {
    stopPolling();
    try {
      const view = await api('GET', '/api/queue');
      await adoptView(view);
    } catch (failure) {
      if (failure.tokenLost) {
        await lostPlace();
      } else {
        const [first] = explain(failure, 'checking your place in line');
        const wait = Math.ceil(failure.retryAfterSeconds);
        showError(first, `You keep your place. We will check again in ${wait} second${wait === 1 ? '' : 's'}.`);
        schedule(failure.retryAfterSeconds, pollLine);
      }
    }
  }

  /** The token stopped working (expired, revoked, or dropped after a long silence). */
  async function lostPlace(message) {
    stopPolling();
    rememberToken(null);
    state.status = null;
    showSteps([]);
    const why = message || 'Your turn in line ended: it expired or was withdrawn.';
    if (Date.now() - state.lastAutoReentry < REENTRY_GUARD_MS) {
      renderLine(null);
      showError(why, 'Press \u201cJoin the line\u201d to get a new place.');
      $('join-button').hidden = false;
      $('join-button').focus();
      return;
    }
    showError(why, 'We have put you back in the line; this page moves on by itself when it is your turn.');
    state.lastAutoReentry = Date.now();
    await joinLine();
  }

  function renderLine(view) {
    const status = $('queue-status');
    const words = $('queue-status-words');
    const position = $('queue-position');
    const positionWords = $('queue-position-words');
    const opensAt = $('opens-at');
    const progress = $('queue-progress');
    if (!view) {
      status.textContent = '';
      status.removeAttribute('data-status');
      words.textContent = 'You have no place in line.';
      position.textContent = '\u2013';
      positionWords.textContent = '';
      $('queue-wait').textContent = '\u2013';
      opensAt.hidden = true;
      progress.value = 0;
      $('leave-button').hidden = true;
      $('session-ends').hidden = true;
      return;
    }
    status.textContent = view.status;
    status.dataset.status = view.status;
    position.textContent = String(view.position);
    $('leave-button').hidden = false;
    if (view.status === 'ACTIVE') {
      words.textContent = 'It is your turn.';
      $('position-fact').hidden = true;
      $('wait-fact').hidden = true;
      opensAt.hidden = true;
      progress.value = 100;
      $('line-explainer').hidden = true;
      $('leave-button').textContent = 'Give up my turn';
      const ends = view.activeUntil ? Date.parse(view.activeUntil) : NaN;
      $('session-ends').hidden = Number.isNaN(ends);
      if (!Number.isNaN(ends)) {
        $('session-ends').textContent =
          `Your turn lasts until ${clockTime.format(new Date(ends - state.clockOffsetMs))}; pay before then.`;
      }
      return;
    }
    words.textContent = 'Please wait; the page moves on by itself.';
    $('position-fact').hidden = false;
    $('wait-fact').hidden = false;
    $('line-explainer').hidden = false;
    $('session-ends').hidden = true;
    $('leave-button').textContent = 'Leave the line';
    if (view.opensAt) {
      const at = Date.parse(view.opensAt);
      const local = Number.isNaN(at) ? view.opensAt : dateTime.format(new Date(at - state.clockOffsetMs));
      opensAt.hidden = false;
      opensAt.textContent = `The sale opens at ${local}` +
        (Number.isNaN(at) ? '.' : ` (in ${duration((at - serverNow()) / 1000)}).`) +
        ' Everyone who arrives before then gets a place by a fair draw at the opening: there is no need to hurry.';
      positionWords.textContent = 'Places are drawn when the sale opens.';
      $('queue-wait').textContent = 'until the opening';
      progress.removeAttribute('value');
      return;
    }
    opensAt.hidden = true;
    positionWords.textContent = view.position === 1 ? 'You are next.' : `${view.position - 1} ahead of you.`;
    $('queue-wait').textContent = duration(view.estimatedWaitSeconds || 0);
    if (view.position > state.firstPosition) {
      state.firstPosition = view.position;
      memory.set('firstPosition', view.position);
    }
    if (state.firstPosition > 0) {
      progress.value = Math.round(((state.firstPosition - view.position) / state.firstPosition) * 100);
    } else {
      progress.removeAttribute('value');
    }
  }

  async function adoptView(view) {
    if (!view || typeof view.token !== 'string') {
      throw new ApiFailure(500, 'BAD_ANSWER', DEFAULT_RETRY_SECONDS);
    }
    rememberToken(view.token);
    const wasActive = state.status === 'ACTIVE';
    const before = state.position;
    state.status = view.status;
    state.position = view.position;
    renderLine(view);
    if (view.status === 'ACTIVE') {
      stopPolling();
      state.firstPosition = 0;
      memory.set('firstPosition', null);
      if (!wasActive) {
        announce('It is your turn. Choose a concert.');
        await openShop();
      }
      return;
    }
    // WAITING: tell screen readers when the place changes, once.
    if (view.opensAt) {
      if (before === null) announce('You are in the line before the sale opens.');
    } else if (view.position !== before) {
      announce(`You are number ${view.position} in line.`);
    }
    if (wasActive) showSteps([]);
    schedule(view.pollAfterSeconds || DEFAULT_POLL_SECONDS, pollLine);
  }

  async function leaveLine() {
    const done = busy($('leave-button'));
    clearError();
    stopPolling();
    try {
      if (state.token) await api('DELETE', '/api/queue');
    } catch (failure) {
      if (!failure.tokenLost) {
        done();
        showError(...explain(failure, 'taking you out of the line'));
        if (state.status === 'WAITING') schedule(DEFAULT_POLL_SECONDS, pollLine);
        return;
      }
    }
    done();
    rememberToken(null);
    state.status = null;
    state.position = null;
    stopCountdown();
    showSteps([]);
    renderLine(null);
    notice('You left the line. Your place went to the next person.');
    $('join-button').hidden = false;
    $('join-button').focus();
  }

  // ---- Protected calls --------------------------------------------------------------------------

  /** A call that needs an ACTIVE token; token trouble sends the person back to the line. */
  async function shop(method, path, options) {
    try {
      return await api(method, path, options);
    } catch (failure) {
      if (failure.tokenLost) {
        stopCountdown();
        await lostPlace();
        failure.handled = true;
      } else if (failure.code === 'TOKEN_NOT_ACTIVE') {
        showSteps([]);
        state.status = 'WAITING';
        showError('It is not your turn yet.', 'Please wait in line; the page moves on by itself.');
        await pollLine();
        failure.handled = true;
      } else if (failure.code === 'TOKEN_WRONG_ROOM') {
        // The rooms changed since the dates were shown: learn them again before saying where.
        await loadRooms();
        wrongRoom();
        failure.handled = true;
      }
      throw failure;
    }
  }

  // ---- Concerts, performances, seats ------------------------------------------------------------

  async function openShop() {
    if (state.holds.length) {
      if (await resumeHolds()) return;
    }
    await loadConcerts();
  }

  async function loadConcerts() {
    showSteps(['concerts']);
    const list = $('concert-list');
    list.replaceChildren(el('li', { className: 'hint', text: 'Loading concerts\u2026' }));
    try {
      state.concerts = await shop('GET', '/api/concerts');
    } catch (failure) {
      if (failure.handled) return;
      list.replaceChildren(el('li', {}, el('button', { type: 'button', className: 'secondary', id: 'retry-concerts' }, 'Try again')));
      $('retry-concerts').addEventListener('click', () => { clearError(); loadConcerts(); });
      showError(...explain(failure, 'loading the concerts'));
      return;
    }
    list.replaceChildren(...state.concerts.map((concert) => {
      const button = el('button', {
        type: 'button', 'data-testid': 'concert', 'data-concert-id': concert.id, 'aria-pressed': 'false',
      }, el('span', { className: 'title', text: concert.title }),
      el('span', { className: 'meta', text: `${concert.artist} \u00b7 ${concert.venue}` }));
      button.addEventListener('click', () => chooseConcert(concert, button));
      return el('li', {}, button);
    }));
    if (!state.concerts.length) {
      list.replaceChildren(el('li', { className: 'hint', text: 'Nothing is on sale right now.' }));
    }
    $('concerts-title').focus();
  }

  async function chooseConcert(concert, button) {
    clearError();
    notice('');
    for (const other of document.querySelectorAll('[data-testid="concert"]')) {
      other.setAttribute('aria-pressed', String(other === button));
    }
    state.concert = concert;
    state.performance = null;
    $('seats').hidden = true;
    $('performances').hidden = false;
    $('performances-title').textContent = `2. Choose a date for ${concert.title}`;
    const list = $('performance-list');
    list.replaceChildren(el('li', { className: 'hint', text: 'Loading dates\u2026' }));
    let performances;
    try {
      // The rooms too, so that dates another line sells are shown as such.
      const [answer] = await Promise.all([
        shop('GET', `/api/concerts/${concert.id}/performances`),
        loadRooms(),
      ]);
      performances = answer;
    } catch (failure) {
      if (failure.handled) return;
      list.replaceChildren();
      showError(...explain(failure, 'loading the dates'));
      return;
    }
    state.performances = Array.isArray(performances) ? performances : [];
    renderPerformances();
    $('performances-title').focus();
  }

  function renderPerformances() {
    const list = $('performance-list');
    list.replaceChildren(...state.performances.map((performance) => {
      const startsAt = Date.parse(performance.startsAt);
      const soldOut = performance.availableSeats === 0;
      const here = soldHere(performance.id);
      const seller = here ? null : roomSelling(performance.id);
      let meta = `${performance.availableSeats} of ${performance.totalSeats} seats free`;
      if (!here) meta = `Sold through another waiting line: ${seller ? roomTitle(seller) : 'not this one'}`;
      else if (soldOut) meta = 'Sold out';
      const pressed = state.performance && state.performance.id === performance.id;
      const button = el('button', {
        type: 'button', 'data-testid': 'performance', 'data-performance-id': performance.id,
        'data-sold-here': String(here), 'aria-pressed': String(Boolean(pressed)), disabled: soldOut || !here,
      }, el('span', { className: 'title', text: Number.isNaN(startsAt) ? performance.startsAt : dateTime.format(new Date(startsAt)) }),
      el('span', { className: 'meta', text: meta }));
      button.addEventListener('click', () => choosePerformance(performance, button));
      // A disabled button cannot be focused: the way to the right line is a link of its own.
      const elsewhere = seller
        ? el('a', { className: 'other-line', href: pageLink(seller.id), 'data-testid': 'other-room-link' },
          `Join ${linePhrase(seller)} to buy this date`)
        : null;
      return el('li', { className: here ? null : 'elsewhere' }, button, elsewhere);
    }));
    if (!state.performances.length) {
      list.replaceChildren(el('li', { className: 'hint', text: 'No dates are on sale for this concert.' }));
    }
  }

  async function choosePerformance(performance, button) {
    clearError();
    notice('');
    for (const other of document.querySelectorAll('[data-testid="performance"]')) {
      other.setAttribute('aria-pressed', String(other === button));
    }
    state.performance = performance;
    state.picked.clear();
    $('seats').hidden = false;
    await loadSeats(true);
  }

  async function loadSeats(moveFocus) {
    const map = $('seat-map');
    if (!state.seats.length || moveFocus) map.replaceChildren(el('p', { className: 'hint', text: 'Loading the seat map\u2026' }));
    try {
      state.seats = await shop('GET',
        `/api/concerts/${state.concert.id}/performances/${state.performance.id}/seats`);
    } catch (failure) {
      if (failure.handled) return false;
      showError(...explain(failure, 'loading the seat map'));
      return false;
    }
    // Seats picked earlier but taken since are unpicked, and the person is told.
    const lost = [...state.picked].filter((id) => {
      const seat = state.seats.find((s) => s.id === id);
      return !seat || seat.status !== 'AVAILABLE';
    });
    for (const id of lost) state.picked.delete(id);
    if (lost.length) notice(`Seat ${lost.join(', ')} is no longer free and was unpicked.`);
    renderSeats();
    if (moveFocus) $('seats-title').focus();
    return true;
  }

  function gradeClass(grade) {
    return ['R', 'S', 'A'].includes(grade) ? `grade-${grade}` : 'grade-other';
  }

  function renderLegend() {
    const grades = new Map();
    for (const seat of state.seats) if (!grades.has(seat.grade)) grades.set(seat.grade, seat.price);
    const items = [...grades].map(([grade, price]) => el('li', {},
      el('span', { className: `swatch ${gradeClass(grade)}`, 'aria-hidden': 'true' }),
      `${grade}: ${money(price)}`));
    items.push(el('li', {}, el('span', { className: 'swatch picked', 'aria-hidden': 'true' }), 'Picked'));
    items.push(el('li', {}, el('span', { className: 'swatch held', 'aria-hidden': 'true' }), 'Held by someone'));
    items.push(el('li', {}, el('span', { className: 'swatch sold', 'aria-hidden': 'true' }), 'Sold'));
    $('legend').replaceChildren(...items);
  }

  const statusWords = { AVAILABLE: 'free', HELD: 'held by someone else', SOLD: 'sold' };

  function seatLabel(seat) {
    const picked = state.picked.has(seat.id) ? ', picked' : '';
    return `Seat ${seat.id}, grade ${seat.grade}, ${money(seat.price)}, ${statusWords[seat.status] || seat.status}${picked}`;
  }

  function renderSeats() {
    renderLegend();
    const map = $('seat-map');
    const previous = document.activeElement && document.activeElement.dataset
      ? Number(document.activeElement.dataset.seatId) : NaN;
    const focusable = state.seats.find((s) => s.id === previous) ||
      state.seats.find((s) => s.status === 'AVAILABLE') || state.seats[0];
    const buttons = state.seats.map((seat) => {
      const available = seat.status === 'AVAILABLE';
      const button = el('button', {
        type: 'button',
        className: `seat ${gradeClass(seat.grade)}`,
        'data-testid': 'seat',
        'data-seat-id': seat.id,
        'data-status': seat.status,
        'data-grade': seat.grade,
        'aria-label': seatLabel(seat),
        'aria-pressed': available ? String(state.picked.has(seat.id)) : null,
        'aria-disabled': available ? null : 'true',
        title: seatLabel(seat),
        tabindex: seat === focusable ? '0' : '-1',
      });
      return button;
    });
    map.replaceChildren(...buttons);
    if (focusable && focusable.id === previous) {
      const again = map.querySelector(`[data-seat-id="${previous}"]`);
      if (again) again.focus();
    }
    renderSelection();
  }

  function renderSelection() {
    const picked = [...state.picked].sort((a, b) => a - b)
      .map((id) => state.seats.find((seat) => seat.id === id)).filter(Boolean);
    const hold = $('hold-button');
    if (!picked.length) {
      $('selection-summary').textContent = 'No seat picked yet.';
      hold.disabled = true;
      hold.textContent = 'Hold the seats';
      return;
    }
    const total = picked.reduce((sum, seat) => sum + seat.price, 0);
    $('selection-summary').textContent =
      `Picked: ${picked.map((seat) => `seat ${seat.id} (${seat.grade})`).join(', ')}. Total ${money(total)}.`;
    hold.disabled = false;
    hold.textContent = picked.length === 1 ? 'Hold this seat' : `Hold these ${picked.length} seats`;
  }

  function toggleSeat(button) {
    const id = Number(button.dataset.seatId);
    const seat = state.seats.find((s) => s.id === id);
    if (!seat) return;
    if (seat.status !== 'AVAILABLE') {
      notice(`Seat ${id} is ${statusWords[seat.status] || 'not free'}. Please pick a coloured seat.`);
      return;
    }
    if (state.picked.has(id)) {
      state.picked.delete(id);
    } else {
      if (state.picked.size >= MAX_PICK) {
        notice(`You can pick up to ${MAX_PICK} seats at a time. Unpick one to choose another.`);
        return;
      }
      state.picked.add(id);
    }
    notice('');
    button.setAttribute('aria-pressed', String(state.picked.has(id)));
    button.setAttribute('aria-label', seatLabel(seat));
    button.title = seatLabel(seat);
    renderSelection();
  }

  /** Roving focus: one tab stop for the whole map, arrow keys inside it. */
  function moveInMap(event) {
    const current = event.target.closest('.seat');
    if (!current) return;
    const buttons = [...$('seat-map').querySelectorAll('.seat')];
    const index = buttons.indexOf(current);
    const columns = getComputedStyle($('seat-map')).gridTemplateColumns.split(' ').length || 1;
    const moves = {
      ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns,
      Home: -index, End: buttons.length - 1 - index,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = buttons[Math.min(Math.max(index + moves[event.key], 0), buttons.length - 1)];
    current.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  }

  // ---- Holding ----------------------------------------------------------------------------------

  async function holdPicked() {
    clearError();
    notice('');
    const seatIds = [...state.picked].sort((a, b) => a - b);
    if (!seatIds.length) return;
    const done = busy($('hold-button'), 'Holding\u2026');
    const got = [];
    let failedSeat = null;
    try {
      // One request per seat; all or nothing from the person's point of view.
      for (const seatId of seatIds) {
        failedSeat = seatId;
        const reservation = await shop('POST', '/api/reservations', {
          body: { userId: user, concertId: state.concert.id, performanceId: state.performance.id, seatId },
        });
        got.push(reservation);
      }
    } catch (failure) {
      await Promise.all(got.map((reservation) =>
        api('DELETE', `/api/reservations/${reservation.reservationId}`).catch(() => null)));
      done();
      if (failure.handled) return;
      const released = got.length
        ? ' We let go of the other seats you picked, so nothing is held.' : '';
      switch (failure.code) {
        case 'SEAT_UNAVAILABLE':
          state.picked.delete(failedSeat);
          showError(`Seat ${failedSeat} was just taken by someone else.${released}`,
            'Please pick another seat; the map now shows what is still free.');
          break;
        case 'SEAT_LIMIT_REACHED':
          showError(`You already hold or own as many seats of this date as one person may.${released}`,
            'Pay for or let go of the seats you hold before picking more.');
          break;
        default: {
          const [first, next] = explain(failure, `holding seat ${failedSeat}`);
          showError(first + released, next);
        }
      }
      await loadSeats(false);
      return;
    }
    done();
    state.picked.clear();
    state.holds = got.map((reservation) => {
      const seat = state.seats.find((s) => s.id === reservation.seatId) || {};
      return {
        reservationId: reservation.reservationId,
        seatId: reservation.seatId,
        grade: seat.grade || '',
        price: reservation.price,
        expiresAt: reservation.expiresAt,
        concertTitle: state.concert.title,
        startsAt: state.performance.startsAt,
        paid: false,
        payKey: null,
      };
    });
    rememberHolds();
    announce(got.length === 1 ? 'Seat held. Please pay within the time shown.'
      : `${got.length} seats held. Please pay within the time shown.`);
    await showHold();
  }

  /** After a reload or a new turn: what became of the holds this tab remembers. */
  async function resumeHolds() {
    const kept = [];
    const lapsed = [];
    for (const hold of state.holds) {
      if (hold.paid) {
        kept.push(hold);
        continue;
      }
      try {
        const reservation = await shop('GET', `/api/reservations/${hold.reservationId}`);
        if (reservation.status === 'HELD') {
          kept.push({ ...hold, expiresAt: reservation.expiresAt });
        } else if (reservation.status === 'CONFIRMED') {
          kept.push({ ...hold, paid: true });
        } else {
          lapsed.push(hold.seatId);
        }
      } catch (failure) {
        if (failure.handled) return true;
        if (failure.code === 'NOT_FOUND') lapsed.push(hold.seatId);
        else kept.push(hold);
      }
    }
    state.holds = kept;
    rememberHolds();
    if (lapsed.length) {
      showError(`Your hold on seat ${lapsed.join(', ')} ran out before payment, so nothing was charged for it.`,
        kept.length ? 'The seats below are still yours.' : 'Please pick your seats again.');
    }
    if (!kept.length) return false;
    if (kept.every((hold) => hold.paid)) {
      showConfirmation();
      return true;
    }
    await showHold();
    return true;
  }

  function unpaid() {
    return state.holds.filter((hold) => !hold.paid);
  }

  function missingAmount() {
    const due = unpaid().reduce((sum, hold) => sum + hold.price, 0);
    return state.balance === null ? null : Math.max(0, due - state.balance);
  }

  async function showHold() {
    showSteps(['hold'], 'hold-title');
    renderHold();
    startCountdown();
    await refreshBalance();
  }

  function renderHold() {
    const rows = state.holds.map((hold) => el('tr', {},
      el('td', { text: `Seat ${hold.seatId}` }),
      el('td', { text: hold.grade }),
      el('td', { text: money(hold.price) }),
      el('td', { text: hold.paid ? 'Paid' : 'Held' })));
    $('held-rows').replaceChildren(...rows);
    const due = unpaid().reduce((sum, hold) => sum + hold.price, 0);
    $('held-total').textContent = money(due);
    $('balance').textContent = state.balance === null ? '\u2013' : money(state.balance);
    const missing = missingAmount();
    const charge = $('charge-button');
    const pay = $('pay-button');
    pay.textContent = `Pay ${money(due)}`;
    if (missing !== null && missing > 0) {
      charge.hidden = false;
      charge.textContent = `Add ${money(missing)} to my balance`;
      $('balance-hint').textContent = `That is ${money(missing)} short of the total.`;
      pay.disabled = true;
    } else {
      charge.hidden = true;
      $('balance-hint').textContent = missing === null ? '' : 'Enough to pay.';
      pay.disabled = state.paying;
    }
  }

  async function refreshBalance() {
    try {
      const answer = await api('GET', `/api/users/${user}/balance`, { token: false });
      state.balance = answer.balance;
    } catch (failure) {
      if (failure.code === 'NOT_FOUND') {
        showError(`There is no user ${user}.`, 'Open this page with ?user= followed by your user number.');
      }
      state.balance = null;
    }
    renderHold();
  }

  function stopCountdown() {
    if (state.countdownTimer !== null) window.clearInterval(state.countdownTimer);
    state.countdownTimer = null;
  }

  function startCountdown() {
    stopCountdown();
    state.warnedLastMinute = false;
    const tick = () => {
      const open = unpaid();
      if (!open.length) {
        stopCountdown();
        return;
      }
      const ends = Math.min(...open.map((hold) => Date.parse(hold.expiresAt)));
      const left = ends - serverNow();
      const shown = $('hold-countdown');
      shown.textContent = clock(left);
      shown.classList.toggle('urgent', left < 60000);
      if (left < 60000 && !state.warnedLastMinute) {
        state.warnedLastMinute = true;
        announce('Less than a minute left to pay.');
      }
      if (left <= 0 && !state.paying) holdLapsed();
    };
    tick();
    state.countdownTimer = window.setInterval(tick, 250);
  }

  async function holdLapsed() {
    stopCountdown();
    const seats = unpaid().map((hold) => hold.seatId);
    state.holds = state.holds.filter((hold) => hold.paid);
    rememberHolds();
    showError(`Your hold on seat ${seats.join(', ')} ran out before payment. The seats went back on sale and nothing was charged.`,
      'Please pick your seats again.');
    await backToSeats();
  }

  async function backToSeats() {
    stopCountdown();
    if (state.concert && state.performance) {
      showSteps(['concerts', 'performances', 'seats']);
      await loadSeats(true);
    } else {
      await loadConcerts();
    }
  }

  async function releaseHolds() {
    clearError();
    const done = busy($('release-button'));
    const open = unpaid();
    for (const hold of open) {
      try {
        await shop('DELETE', `/api/reservations/${hold.reservationId}`);
      } catch (failure) {
        done();
        if (failure.handled) return;
        showError(...explain(failure, `letting go of seat ${hold.seatId}`));
        return;
      }
    }
    done();
    state.holds = state.holds.filter((hold) => hold.paid);
    rememberHolds();
    notice(`You let go of seat ${open.map((hold) => hold.seatId).join(', ')}.`);
    await backToSeats();
  }

  // ---- Money ------------------------------------------------------------------------------------

  async function chargeMissing() {
    clearError();
    const amount = missingAmount();
    if (!amount) return;
    const done = busy($('charge-button'), 'Adding\u2026');
    // One key per top-up: pressing again after a lost answer never charges twice.
    if (!state.chargeKey || state.chargeKey.amount !== amount) {
      state.chargeKey = { key: newKey(), amount };
      memory.set('chargeKey', state.chargeKey);
    }
    try {
      const answer = await api('POST', `/api/users/${user}/balance/charge`, {
        body: { amount }, token: false, idempotencyKey: state.chargeKey.key,
      });
      state.balance = answer.balance;
      state.chargeKey = null;
      memory.set('chargeKey', null);
      notice(`${money(amount)} added. Your balance is ${money(answer.balance)}.`);
      done();
      renderHold();
      $('pay-button').focus();
    } catch (failure) {
      done();
      if (!failure.retryable && failure.code !== 'IDEMPOTENCY_CONFLICT') {
        state.chargeKey = null;
        memory.set('chargeKey', null);
      }
      showError(...explain(failure, 'adding to your balance'));
      renderHold();
    }
  }

  async function payAll() {
    clearError();
    const open = unpaid();
    if (!open.length) return;
    state.paying = true;
    const done = busy($('pay-button'), 'Paying\u2026');
    const finish = () => {
      state.paying = false;
      done();
      renderHold();
    };
    for (const hold of open) {
      if (!hold.payKey) {
        // Remembered before sending: a retry after a reload learns the first outcome.
        hold.payKey = newKey();
        rememberHolds();
      }
      if (!state.token) {
        // The previous payment ended this turn; a new place is needed for the next seat.
        let view;
        try {
          view = await enterLine();
        } catch (failure) {
          finish();
          showError(...explain(failure, 'getting a new turn to pay the other seats'));
          return;
        }
        rememberToken(view.token);
        if (view.status !== 'ACTIVE') {
          finish();
          stopCountdown();
          state.status = null;
          showSteps([]);
          showError('The first seat is paid. Paying ended your turn, so you are back in line to pay for the others.',
            'They stay held until their time runs out; this page carries on when it is your turn.');
          await adoptView(view);
          return;
        }
        state.status = 'ACTIVE';
      }
      try {
        const payment = await api('POST', '/api/payments', {
          body: { reservationId: hold.reservationId, userId: user },
          idempotencyKey: hold.payKey,
        });
        hold.paid = true;
        hold.paymentId = payment.paymentId;
        if (state.balance !== null) state.balance -= hold.price;
        rememberHolds();
        // The payment ended the token's turn.
        rememberToken(null);
      } catch (failure) {
        finish();
        await payFailed(failure, hold);
        return;
      }
    }
    state.paying = false;
    done();
    showConfirmation();
  }

  async function payFailed(failure, hold) {
    switch (failure.code) {
      case 'INSUFFICIENT_BALANCE':
        await refreshBalance();
        showError('Your balance is too low for this payment; nothing was charged.',
          `Add ${money(missingAmount() || hold.price)} with the button below, then pay.`);
        return;
      case 'RESERVATION_NOT_PAYABLE':
        state.holds = state.holds.filter((h) => h !== hold);
        rememberHolds();
        showError(`Your hold on seat ${hold.seatId} ran out or was cancelled before the payment, so nothing was charged for it.`,
          unpaid().length ? 'You can still pay for the other seats.' : 'Please pick your seats again.');
        if (unpaid().length) renderHold();
        else if (state.holds.length) showConfirmation();
        else await backToSeats();
        return;
      case 'TOKEN_INVALID':
      case 'TOKEN_MISSING':
      case 'TOKEN_USER_MISMATCH':
        stopCountdown();
        await lostPlace('Your turn in line ended before the payment, so nothing was charged.');
        return;
      default:
        showError(...explain(failure, `paying for seat ${hold.seatId}`));
    }
  }

  function showConfirmation() {
    stopCountdown();
    stopPolling();
    notice('');
    const paid = state.holds.filter((hold) => hold.paid);
    const total = paid.reduce((sum, hold) => sum + hold.price, 0);
    const first = paid[0] || {};
    const when = Date.parse(first.startsAt || '');
    $('confirmation').replaceChildren(
      el('p', {}, el('strong', { text: `Paid ${money(total)}.` }),
        ` ${first.concertTitle || ''}${Number.isNaN(when) ? '' : `, ${dateTime.format(new Date(when))}`}`),
      el('ul', {}, ...paid.map((hold) => el('li', {},
        `Seat ${hold.seatId} (${hold.grade}): reservation number `,
        el('strong', { 'data-reservation-id': hold.reservationId, text: String(hold.reservationId) })))),
      el('p', { className: 'hint', text: 'Keep the reservation numbers: they are your tickets.' }));
    $('line').hidden = true;
    showSteps(['done'], 'done-title');
    announce(`Payment done. ${paid.length === 1 ? 'Your reservation number is' : 'Your reservation numbers are'} ${paid.map((h) => h.reservationId).join(', ')}.`);
  }

  async function buyMore() {
    state.holds = [];
    rememberHolds();
    state.status = null;
    state.position = null;
    state.seats = [];
    notice('');
    clearError();
    $('line').hidden = false;
    showSteps([]);
    $('line-title').focus();
    await joinLine();
  }

  // ---- Start ------------------------------------------------------------------------------------

  function wire() {
    $('user-id').textContent = String(user);
    $('leave-button').addEventListener('click', leaveLine);
    $('join-button').addEventListener('click', () => { clearError(); notice(''); joinLine(); });
    $('hold-button').addEventListener('click', holdPicked);
    $('refresh-seats').addEventListener('click', () => { clearError(); notice(''); loadSeats(false); });
    $('charge-button').addEventListener('click', chargeMissing);
    $('pay-button').addEventListener('click', payAll);
    $('release-button').addEventListener('click', releaseHolds);
    $('again-button').addEventListener('click', buyMore);
    const map = $('seat-map');
    map.addEventListener('click', (event) => {
      const seat = event.target.closest('.seat');
      if (seat) toggleSeat(seat);
    });
    map.addEventListener('keydown', moveInMap);
    // Polls stay timely when a tab comes back from the background.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && state.status === 'WAITING') pollLine();
    });
  }

  async function start() {
    wire();
    if (!userIsValid) {
      showError(`\u201c${userParam}\u201d is not a user number, so you are buying as user 1.`,
        'To buy as someone else, open this page with ?user= followed by a number, like ?user=7.');
    }
    await loadRooms();
    if (askedRoom !== null && !ROOM_ID_PATTERN.test(askedRoom)) {
      unknownRoom();
      return;
    }
    if (askedRoom === null && hasOtherRooms()) {
      showRoomList();
      return;
    }
    // With the room default alone, `/` is the page from before rooms: no banner, no list.
    if (askedRoom !== null) showRoomBanner();
    if (state.holds.length && state.holds.every((hold) => hold.paid)) {
      showConfirmation();
      return;
    }
    if (state.token) {
      await pollLine();
    } else {
      await joinLine();
    }
  }

  // The page never shows a stack trace: anything unexpected becomes a plain sentence.
  window.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    showError('Something unexpected went wrong on this page.', 'Please reload it; your place in line is kept.');
  });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', () => { start(); });
  } else {
    start();
  }
})();
