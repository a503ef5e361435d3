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

  // ---- Words: the page in the fan's language ---------------------------------------------------
  //
  // One message catalog per language, assets/i18n/<language>.json; adding a language is adding
  // its file and its locale in LANGUAGES (and in routes/page.rs, which serves the files). The
  // language: `?lang=` (remembered in this browser), else the browser's preferred languages, else
  // English. English comes with this script (routes/page.rs puts it in front), so a word missing
  // from another catalog is said in English, never shown as its key; a test fails on it.

  /** The languages the page speaks, with the locale its dates, times and numbers are written in. */
  const LANGUAGES = { en: 'en-US', ko: 'ko-KR' };
  const FALLBACK_LANGUAGE = 'en';
  const LANGUAGE_KEY = 'ticketing:lang';
  const ENGLISH = window.TICKETING_ENGLISH_WORDS || {};

  const isLanguage = (text) => typeof text === 'string' && Object.prototype.hasOwnProperty.call(LANGUAGES, text);

  function chooseLanguage() {
    const asked = (new URLSearchParams(window.location.search).get('lang') || '').trim().toLowerCase();
    if (isLanguage(asked)) {
      try {
        window.localStorage.setItem(LANGUAGE_KEY, asked);
      } catch (_) {
        // Not remembered: `?lang=` still chose for this page.
      }
      return asked;
    }
    let kept = null;
    try {
      kept = window.localStorage.getItem(LANGUAGE_KEY);
    } catch (_) {
      kept = null;
    }
    if (isLanguage(kept)) return kept;
    const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ''];
    for (const tag of preferred) {
      const base = String(tag).toLowerCase().split('-')[0];
      if (isLanguage(base)) return base;
    }
    return FALLBACK_LANGUAGE;
  }

  const words = {
    language: chooseLanguage(),
    catalog: ENGLISH,
    rules: new Intl.PluralRules('en-US'),
  };
  const englishRules = new Intl.PluralRules('en-US');

  function message(catalog, rules, key, params) {
    const direct = catalog[key];
    if (typeof direct === 'string') return direct;
    if (typeof params.count === 'number') {
      const form = catalog[`${key}.${rules.select(params.count)}`];
      if (typeof form === 'string') return form;
      if (typeof catalog[`${key}.other`] === 'string') return catalog[`${key}.other`];
    }
    return null;
  }

  function template(key, params) {
    return message(words.catalog, words.rules, key, params) ?? message(ENGLISH, englishRules, key, params) ?? '';
  }

  /** The words of `key` in the page's language, `{name}` filled from `params`. */
  function t(key, params = {}) {
    return template(key, params).replace(/\{(\w+)\}/g,
      (whole, name) => (Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole));
  }

  /** A sentence with nodes in it (links, emphasis): `{name}` takes `params[name]`, node or text. */
  function phrase(key, params = {}) {
    const parts = template(key, params).split(/\{(\w+)\}/);
    const span = document.createElement('span');
    parts.forEach((part, index) => {
      if (index % 2 === 0) {
        if (part) span.append(part);
        return;
      }
      const value = params[part];
      if (value instanceof Node) span.append(value);
      else if (value !== undefined && value !== null) span.append(String(value));
    });
    return span;
  }

  /** The chosen language's catalog, over English; the page's fixed words in that language. */
  async function loadWords() {
    document.documentElement.lang = words.language;
    if (words.language !== FALLBACK_LANGUAGE) {
      try {
        const response = await fetch(`/assets/i18n/${words.language}.json`, { credentials: 'omit' });
        if (response.ok) {
          words.catalog = await response.json();
          words.rules = new Intl.PluralRules(LANGUAGES[words.language]);
        }
      } catch (_) {
        // English, then: better than nothing, and the server's problems are English anyway.
      }
    }
    formats.build();
    for (const node of document.querySelectorAll('[data-i18n]')) fill(node, node.dataset.i18n);
    for (const node of document.querySelectorAll('[data-i18n-aria-label]')) {
      node.setAttribute('aria-label', t(node.dataset.i18nAriaLabel));
    }
  }

  /** An element's words from `key`; its `[data-slot]` children keep their place in the sentence. */
  function fill(node, key) {
    const slots = {};
    for (const child of node.children) if (child.dataset.slot) slots[child.dataset.slot] = child;
    if (!Object.keys(slots).length) {
      node.textContent = t(key);
      return;
    }
    node.replaceChildren(...phrase(key, slots).childNodes);
  }

  /** Numbers, prices, dates and times in the page's language. */
  const formats = {
    number: new Intl.NumberFormat('en-US'),
    dateTime: new Intl.DateTimeFormat('en-US', { dateStyle: 'full', timeStyle: 'short' }),
    clockTime: new Intl.DateTimeFormat('en-US', { hour: '2-digit', minute: '2-digit' }),
    build() {
      const locale = LANGUAGES[words.language];
      this.number = new Intl.NumberFormat(locale);
      this.dateTime = new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'short' });
      this.clockTime = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' });
    },
  };
  const money = (amount) => t('format.won', { amount: formats.number.format(amount) });
  const dateTime = { format: (date) => formats.dateTime.format(date) };
  const clockTime = { format: (date) => formats.clockTime.format(date) };

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s <= 1 ? t('duration.aboutASecond') : t('duration.aboutSeconds', { count: s });
    const minutes = Math.round(s / 60);
    if (minutes < 60) return minutes === 1 ? t('duration.aboutAMinute') : t('duration.aboutMinutes', { count: minutes });
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    return t('duration.aboutHours', { hours, minutes: rest });
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
  // With identity on, the account the person signed in as (`GET /api/me`) replaces `?user=`.
  let user = userIsValid ? parsedUser : 1;
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
    token: null,
    status: null,
    position: null,
    firstPosition: 0,
    pollTimer: null,
    concerts: [],
    concert: null,
    performance: null,
    seats: [],
    picked: new Set(),
    holds: [],
    balance: null,
    chargeKey: null,
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

  /** What this tab remembers of the user's line and holds; read again once the user is known. */
  function recall() {
    state.token = memory.get('token');
    state.firstPosition = memory.get('firstPosition') || 0;
    state.holds = memory.get('holds') || [];
    state.chargeKey = memory.get('chargeKey');
  }

  // ---- Who is buying: signing in through the identity provider ---------------------------------
  //
  // With identity on (`GET /api/identity` says `bearer`), the page signs in with the
  // authorization code flow and PKCE (RFC 7636) itself: no library, no CDN. The verifier never
  // leaves this tab; the access token is kept in sessionStorage for this tab only and sent as
  // `Authorization: Bearer`. The provider sends the person back to `/`, and the page then
  // returns to the address it was opened at (a room's page stays that room's).

  const SIGN_IN_KEY = 'ticketing:sign-in';
  const ACCESS_TOKEN_KEY = 'ticketing:access-token';

  const identity = {
    mode: 'off',
    issuer: null,
    clientId: null,
    scope: 'openid',
    accessToken: null,
    subject: null,
  };

  function stored(key) {
    try {
      const text = window.sessionStorage.getItem(key);
      return text === null ? null : JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  function store(key, value) {
    try {
      if (value === null) window.sessionStorage.removeItem(key);
      else window.sessionStorage.setItem(key, JSON.stringify(value));
    } catch (_) {
      // Refused storage: signing in then lasts as long as the page is open.
    }
  }

  function base64Url(bytes) {
    let text = '';
    for (const byte of bytes) text += String.fromCharCode(byte);
    return window.btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function randomText(length) {
    const bytes = new Uint8Array(length);
    window.crypto.getRandomValues(bytes);
    return base64Url(bytes);
  }

  async function challengeFor(verifier) {
    const digest = await window.crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    return base64Url(new Uint8Array(digest));
  }

  /** The issuer's endpoints, from its discovery document. */
  async function issuerEndpoints() {
    const address = `${identity.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const response = await fetch(address, { credentials: 'omit', cache: 'no-store' });
    if (!response.ok) throw new Error(`discovery answered ${response.status}`);
    const document = await response.json();
    if (typeof document.authorization_endpoint !== 'string' || typeof document.token_endpoint !== 'string') {
      throw new Error('discovery names no authorization or token endpoint');
    }
    return document;
  }

  const redirectUri = () => `${window.location.origin}/`;

  async function signIn() {
    const button = $('sign-in-button');
    button.disabled = true;
    try {
      const endpoints = await issuerEndpoints();
      const verifier = randomText(32);
      const signInState = randomText(16);
      store(SIGN_IN_KEY, {
        verifier,
        state: signInState,
        returnTo: `${window.location.pathname}${window.location.search}`,
      });
      const query = new URLSearchParams({
        response_type: 'code',
        client_id: identity.clientId,
        redirect_uri: redirectUri(),
        scope: identity.scope,
        state: signInState,
        code_challenge: await challengeFor(verifier),
        code_challenge_method: 'S256',
      });
      window.location.assign(`${endpoints.authorization_endpoint}?${query}`);
    } catch (_) {
      button.disabled = false;
      showError(t('signIn.unreachable'), t('signIn.unreachableNext'));
    }
  }

  /**
   * Back from the provider with `?code=`: trades the code for an access token, then returns to
   * where the person was. True when the page is being reloaded there.
   */
  async function finishSignIn() {
    const code = params.get('code');
    const returned = params.get('state');
    const pending = stored(SIGN_IN_KEY);
    if (code === null && params.get('error') === null) return false;
    store(SIGN_IN_KEY, null);
    if (params.get('error') !== null || !pending || pending.state !== returned) {
      window.history.replaceState(null, '', '/');
      showError(t('signIn.unfinished'), t('signIn.again'));
      return false;
    }
    const issuerParam = params.get('iss');
    if (issuerParam !== null && issuerParam.replace(/\/+$/, '') !== identity.issuer.replace(/\/+$/, '')) {
      showError(t('signIn.otherIssuer'), t('signIn.again'));
      return false;
    }
    try {
      const endpoints = await issuerEndpoints();
      const response = await fetch(endpoints.token_endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirectUri(),
          client_id: identity.clientId,
          code_verifier: pending.verifier,
        }),
        credentials: 'omit',
      });
      const answer = await response.json();
      if (!response.ok || typeof answer.access_token !== 'string') throw new Error('no access token');
      const lifetime = Number(answer.expires_in) > 0 ? Number(answer.expires_in) : 300;
      store(ACCESS_TOKEN_KEY, { token: answer.access_token, expiresAt: Date.now() + lifetime * 1000 });
    } catch (_) {
      window.history.replaceState(null, '', '/');
      showError(t('signIn.unfinished'), t('signIn.again'));
      return false;
    }
    window.location.replace(pending.returnTo || '/');
    return true;
  }

  function showSignIn() {
    stopPolling();
    showSteps([]);
    $('line').hidden = true;
    $('rooms').hidden = true;
    $('sign-in').hidden = false;
    $('sign-in-button').disabled = false;
    $('sign-in-button').focus();
  }

  /** The provider or the service no longer takes the access token: sign in again. */
  function signedOut() {
    if (identity.mode !== 'bearer' || !identity.accessToken) return;
    identity.accessToken = null;
    store(ACCESS_TOKEN_KEY, null);
    showSignIn();
    showError(t('signIn.expired'), t('signIn.expiredNext'));
  }

  /**
   * Who is buying. With identity off, `?user=`. With it on, the signed-in account: false while
   * the person still has to sign in (the page then shows the button and waits).
   */
  async function knowTheBuyer() {
    try {
      const response = await fetch('/api/identity', { credentials: 'omit', cache: 'no-store' });
      const settings = response.ok ? await response.json() : null;
      if (settings && (settings.mode === 'bearer' || settings.mode === 'gateway')) {
        identity.mode = settings.mode;
        identity.issuer = settings.issuer || null;
        identity.clientId = settings.clientId || null;
        identity.scope = settings.scope || 'openid';
      }
    } catch (_) {
      // Unreachable service: the first real request says so in plain words.
    }
    if (identity.mode === 'off') return true;
    $('who').textContent = t('signIn.progress');
    if (identity.mode === 'bearer') {
      if (await finishSignIn()) return false;
      const kept = stored(ACCESS_TOKEN_KEY);
      if (!kept || typeof kept.token !== 'string' || !(kept.expiresAt > Date.now() + 10000)) {
        store(ACCESS_TOKEN_KEY, null);
        showSignIn();
        return false;
      }
      identity.accessToken = kept.token;
    }
    // The service may not have the issuer's keys yet (503 while it fetches them): it says when
    // to ask again, and the person waits rather than starts over.
    for (;;) {
      try {
        const me = await api('GET', '/api/me', { token: false });
        user = me.userId;
        identity.subject = me.subject;
        clearError();
        break;
      } catch (failure) {
        if (failure.status === 401 && identity.mode === 'bearer') return false;
        showError(...explain(failure, t('doing.findingYou')));
        if (!failure.retryable) return false;
        await sleep(Math.max(1, failure.retryAfterSeconds) * 1000);
      }
    }
    $('who').replaceChildren(phrase('signIn.as', {
      subject: el('strong', { id: 'user-id', text: identity.subject }), user,
    }));
    return true;
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
    if (identity.accessToken) headers.Authorization = `Bearer ${identity.accessToken}`;
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
    if (response.status === 401 && (code === 'AUTH_REQUIRED' || code === 'AUTH_INVALID')) {
      signedOut();
    }
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

  /** Plain words for a failure that is not about the token; `what` (words) says what was being done. */
  function explain(failure, what) {
    const wait = Math.ceil(failure.retryAfterSeconds || DEFAULT_RETRY_SECONDS);
    switch (failure.code) {
      case 'NETWORK':
        return [t('explain.network', { what }), t('explain.networkNext')];
      case 'UNAVAILABLE':
      case 'HTTP_503':
        return [t('explain.busy', { what }), t('explain.tryAgainIn', { count: wait })];
      case 'RATE_LIMITED':
      case 'HTTP_429':
        return [t('explain.rateLimited'), t('explain.waitThenRetry', { count: wait })];
      case 'NOT_FOUND':
        return [t('explain.notFound', { what }), t('explain.notFoundNext')];
      case 'INVALID_REQUEST':
        return [t('explain.invalid', { what }), t('explain.invalidNext')];
      case 'ROOM_CLOSED':
        return [t('explain.roomClosed', { what }), t('explain.roomClosedNext')];
      case 'TOKEN_WRONG_ROOM':
        return [t('explain.wrongRoom', { what }), t('explain.wrongRoomNext')];
      case 'CHALLENGE_REQUIRED':
      case 'CHALLENGE_FAILED':
      case 'CHALLENGE_UNSOLVED':
        return [t('explain.gate', { what }), t('explain.gateNext')];
      case 'INVITE_REQUIRED':
        return [t('explain.inviteRequired'), t('explain.inviteNext')];
      case 'INVITE_INVALID':
        return [t('explain.inviteInvalid'), t('explain.inviteNext')];
      case 'USER_MISMATCH':
      case 'TOKEN_USER_MISMATCH':
        return [t('explain.otherUser', { what }), t('explain.invalidNext')];
      case 'AUTH_REQUIRED':
      case 'AUTH_INVALID':
        return [t('signIn.expired'), t('signIn.again')];
      case 'IDEMPOTENCY_CONFLICT':
        return [t('explain.inProgress'), t('explain.inProgressNext')];
      default:
        return [t('explain.failed', { what }), t('explain.failedNext')];
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

  /** A server time for people: their own clock and time zone, and how far off it is. */
  function when(text) {
    const at = Date.parse(text || '');
    if (Number.isNaN(at)) return null;
    const local = dateTime.format(new Date(at - state.clockOffsetMs));
    const left = (at - serverNow()) / 1000;
    return left > 0 ? t('format.whenIn', { time: local, duration: duration(left) }) : local;
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
      return hasOtherRooms() ? t('rooms.allOther') : t('rooms.all');
    }
    return room.name || room.id;
  }

  /** "the line for …", to follow "join". */
  function linePhrase(room) {
    const title = roomTitle(room);
    return t('rooms.lineFor', {
      title: room.id === DEFAULT_ROOM && room.name === 'Default' ? title.toLowerCase() : title,
    });
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
        return [t('rooms.onSale'), closes ? t('rooms.takesUntil', { closes }) : t('rooms.joinForTurn')];
      case 'PREQUEUE':
        return [opens ? t('rooms.opens', { opens }) : t('rooms.opensSoon'), t('rooms.prequeue')];
      case 'PAUSED':
        return [t('rooms.paused'), t('rooms.pausedMeaning')];
      case 'CLOSED':
        if (opens) return [t('rooms.notOpenYet', { opens }), t('rooms.comeBack')];
        if (closedAlready) return [t('rooms.closed'), t('rooms.salesEnded', { closes })];
        return [t('rooms.closed'), t('rooms.noEntriesNow')];
      default:
        return [String(room.status || t('rooms.unknownStatus')), ''];
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
    document.title = t('page.titleRooms');
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
    document.title = t('page.titleRoom', { name });
  }

  const allLinesLink = () => el('a', { href: pageLink(null), 'data-testid': 'all-rooms-link' }, t('rooms.seeAll'));

  function unknownRoom() {
    stopPolling();
    $('room-banner').hidden = true;
    $('line').hidden = true;
    showSteps([]);
    showError(t('rooms.unknown', { room: askedRoom }), phrase('rooms.findYourConcert', { link: allLinesLink() }));
    // The lines that do exist, right here: one step less for the fan.
    if (hasOtherRooms()) showRoomList();
    document.title = t('page.titleUnknown');
  }

  function roomClosed(failure) {
    const room = findRoom(roomId);
    const name = room ? roomTitle(room) : roomId;
    const opens = when(failure.problem.opensAt);
    const ended = room && room.closesAt && Date.parse(room.closesAt) <= serverNow() ? when(room.closesAt) : null;
    renderLine(null);
    $('queue-status-words').textContent = t('line.closed');
    // Nothing to count or wait for, and nothing to keep the tab open for.
    for (const id of ['position-fact', 'wait-fact', 'line-explainer', 'queue-progress']) $(id).hidden = true;
    let first;
    let next;
    if (opens) {
      first = t('closed.notOpen', { name });
      next = t('closed.opensAt', { opens });
    } else if (ended) {
      first = t('closed.ended', { name, ended });
      next = t('closed.noEntries');
    } else {
      first = t('closed.now', { name });
      next = t('closed.later');
    }
    showError(first, next, phrase('closed.others', { link: allLinesLink() }));
    $('join-button').hidden = false;
  }

  /** A seat map or hold refused to this room's turn: the date is sold through another line. */
  function wrongRoom() {
    const seller = state.performance ? roomSelling(state.performance.id) : null;
    const elsewhere = seller && seller.id !== roomId ? seller : null;
    state.performance = null;
    state.picked.clear();
    $('seats').hidden = true;
    showError(t('wrongRoom.title'),
      elsewhere
        ? phrase('wrongRoom.joinOther', { line: el('a', { href: pageLink(elsewhere.id) }, linePhrase(elsewhere)) })
        : t('explain.wrongRoomNext'));
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
    const body = askedRoom === null ? { userId: user } : { userId: user, roomId };
    // A presale's invitation links to `/?room=<id>&invite=<code>`: the code goes with the entry.
    const invite = (params.get('invite') || '').trim();
    if (invite) body.invite = invite;
    return body;
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
    const checking = t('gate.checking');
    words.textContent = checking;
    notice(t('gate.checkingNotice'));
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
            notice(t('gate.progressSpoken', { percent }));
          }
          return;
        }
        worker.terminate();
        if (Number.isInteger(message.number)) resolve(message.number);
        else fail();
      };
      worker.postMessage(challenge);
    });
    notice(t('gate.checked'));
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
    $('queue-status-words').textContent = t('line.gettingPlace');
    try {
      const view = await enterLine();
      await adoptView(view);
    } catch (failure) {
      if (failure.code === 'ROOM_CLOSED') {
        roomClosed(failure);
      } else if (failure.code === 'NOT_FOUND' && askedRoom !== null) {
        unknownRoom();
      } else if (failure.retryable) {
        const [first] = explain(failure, t('doing.joining'));
        const wait = Math.ceil(failure.retryAfterSeconds);
        showError(first, t('line.retryJoin', { count: wait }));
        schedule(failure.retryAfterSeconds, joinLine);
      } else {
        showError(...explain(failure, t('doing.joining')));
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
        const [first] = explain(failure, t('doing.checking'));
        const wait = Math.ceil(failure.retryAfterSeconds);
        showError(first, t('line.retryPoll', { count: wait }));
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
    const why = message || t('line.lost');
    if (Date.now() - state.lastAutoReentry < REENTRY_GUARD_MS) {
      renderLine(null);
      showError(why, t('line.pressJoin'));
      $('join-button').hidden = false;
      $('join-button').focus();
      return;
    }
    showError(why, t('line.putBack'));
    state.lastAutoReentry = Date.now();
    await joinLine();
  }

  /** The line's status for people; `data-status` keeps the API's word for scripts and tests. */
  function statusName(status) {
    if (status === 'ACTIVE') return t('line.statusActive');
    if (status === 'WAITING') return t('line.statusWaiting');
    return status;
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
      words.textContent = t('line.noPlace');
      position.textContent = '\u2013';
      positionWords.textContent = '';
      $('queue-wait').textContent = '\u2013';
      opensAt.hidden = true;
      progress.value = 0;
      $('leave-button').hidden = true;
      $('session-ends').hidden = true;
      return;
    }
    status.textContent = statusName(view.status);
    status.dataset.status = view.status;
    position.textContent = String(view.position);
    $('leave-button').hidden = false;
    if (view.status === 'ACTIVE') {
      words.textContent = t('line.yourTurn');
      $('position-fact').hidden = true;
      $('wait-fact').hidden = true;
      opensAt.hidden = true;
      progress.value = 100;
      $('line-explainer').hidden = true;
      $('leave-button').textContent = t('line.giveUp');
      const ends = view.activeUntil ? Date.parse(view.activeUntil) : NaN;
      $('session-ends').hidden = Number.isNaN(ends);
      if (!Number.isNaN(ends)) {
        $('session-ends').textContent =
          t('line.turnUntil', { time: clockTime.format(new Date(ends - state.clockOffsetMs)) });
      }
      return;
    }
    words.textContent = t('line.pleaseWait');
    $('position-fact').hidden = false;
    $('wait-fact').hidden = false;
    $('line-explainer').hidden = false;
    $('session-ends').hidden = true;
    $('leave-button').textContent = t('line.leave');
    if (view.opensAt) {
      const at = Date.parse(view.opensAt);
      const local = Number.isNaN(at) ? view.opensAt : dateTime.format(new Date(at - state.clockOffsetMs));
      opensAt.hidden = false;
      const opening = Number.isNaN(at) ? t('line.opensAt', { time: local })
        : t('line.opensAtIn', { time: local, duration: duration((at - serverNow()) / 1000) });
      opensAt.textContent = `${opening} ${t('line.fairDraw')}`;
      positionWords.textContent = t('line.drawnAtOpening');
      $('queue-wait').textContent = t('line.untilOpening');
      progress.removeAttribute('value');
      return;
    }
    opensAt.hidden = true;
    positionWords.textContent = view.position === 1 ? t('line.next') : t('line.ahead', { count: view.position - 1 });
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
        announce(t('line.announceTurn'));
        await openShop();
      }
      return;
    }
    // WAITING: tell screen readers when the place changes, once.
    if (view.opensAt) {
      if (before === null) announce(t('line.announcePrequeue'));
    } else if (view.position !== before) {
      announce(t('line.announcePosition', { position: view.position }));
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
        showError(...explain(failure, t('doing.leaving')));
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
    notice(t('line.left'));
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
        showError(t('line.notYet'), t('line.waitInLine'));
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
    list.replaceChildren(el('li', { className: 'hint', text: t('concerts.loading') }));
    try {
      state.concerts = await shop('GET', '/api/concerts');
    } catch (failure) {
      if (failure.handled) return;
      list.replaceChildren(el('li', {}, el('button', { type: 'button', className: 'secondary', id: 'retry-concerts' }, t('common.tryAgain'))));
      $('retry-concerts').addEventListener('click', () => { clearError(); loadConcerts(); });
      showError(...explain(failure, t('doing.loadingConcerts')));
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
      list.replaceChildren(el('li', { className: 'hint', text: t('concerts.none') }));
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
    $('performances-title').textContent = t('performances.titleFor', { title: concert.title });
    const list = $('performance-list');
    list.replaceChildren(el('li', { className: 'hint', text: t('performances.loading') }));
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
      showError(...explain(failure, t('doing.loadingDates')));
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
      let meta = t('performances.free', {
        free: formats.number.format(performance.availableSeats), total: formats.number.format(performance.totalSeats),
      });
      if (!here) meta = t('performances.elsewhere', { line: seller ? roomTitle(seller) : t('performances.notThisOne') });
      else if (soldOut) meta = t('performances.soldOut');
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
          t('performances.joinOther', { line: linePhrase(seller) }))
        : null;
      return el('li', { className: here ? null : 'elsewhere' }, button, elsewhere);
    }));
    if (!state.performances.length) {
      list.replaceChildren(el('li', { className: 'hint', text: t('performances.none') }));
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
    if (!state.seats.length || moveFocus) map.replaceChildren(el('p', { className: 'hint', text: t('seats.loading') }));
    try {
      state.seats = await shop('GET',
        `/api/concerts/${state.concert.id}/performances/${state.performance.id}/seats`);
    } catch (failure) {
      if (failure.handled) return false;
      showError(...explain(failure, t('doing.loadingSeats')));
      return false;
    }
    // Seats picked earlier but taken since are unpicked, and the person is told.
    const lost = [...state.picked].filter((id) => {
      const seat = state.seats.find((s) => s.id === id);
      return !seat || seat.status !== 'AVAILABLE';
    });
    for (const id of lost) state.picked.delete(id);
    if (lost.length) notice(t('seats.lost', { seats: lost.join(', ') }));
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
    items.push(el('li', {}, el('span', { className: 'swatch picked', 'aria-hidden': 'true' }), t('seats.picked')));
    items.push(el('li', {}, el('span', { className: 'swatch held', 'aria-hidden': 'true' }), t('seats.heldBySomeone')));
    items.push(el('li', {}, el('span', { className: 'swatch sold', 'aria-hidden': 'true' }), t('seats.sold')));
    $('legend').replaceChildren(...items);
  }

  /** A seat's status in words; null for one the page does not know. */
  function seatStatusWords(status) {
    switch (status) {
      case 'AVAILABLE': return t('seats.statusFree');
      case 'HELD': return t('seats.statusHeld');
      case 'SOLD': return t('seats.statusSold');
      default: return null;
    }
  }

  function seatLabel(seat) {
    const words = {
      seat: seat.id, grade: seat.grade, price: money(seat.price), status: seatStatusWords(seat.status) || seat.status,
    };
    return state.picked.has(seat.id) ? t('seats.labelPicked', words) : t('seats.label', words);
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
      $('selection-summary').textContent = t('seats.nonePicked');
      hold.disabled = true;
      hold.textContent = t('seats.holdButton');
      return;
    }
    const total = picked.reduce((sum, seat) => sum + seat.price, 0);
    $('selection-summary').textContent =
      t('seats.pickedSummary', {
        seats: picked.map((seat) => t('seats.pickedItem', { seat: seat.id, grade: seat.grade })).join(', '),
        total: money(total),
      });
    hold.disabled = false;
    hold.textContent = picked.length === 1 ? t('seats.holdOne') : t('seats.holdMany', { count: picked.length });
  }

  function toggleSeat(button) {
    const id = Number(button.dataset.seatId);
    const seat = state.seats.find((s) => s.id === id);
    if (!seat) return;
    if (seat.status !== 'AVAILABLE') {
      notice(t('seats.notFree', { seat: id, status: seatStatusWords(seat.status) || t('seats.statusNotFree') }));
      return;
    }
    if (state.picked.has(id)) {
      state.picked.delete(id);
    } else {
      if (state.picked.size >= MAX_PICK) {
        notice(t('seats.maxPick', { max: MAX_PICK }));
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
    const done = busy($('hold-button'), t('hold.holding'));
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
      const released = got.length ? ` ${t('hold.releasedOthers')}` : '';
      switch (failure.code) {
        case 'SEAT_UNAVAILABLE':
          state.picked.delete(failedSeat);
          showError(t('hold.taken', { seat: failedSeat }) + released, t('hold.takenNext'));
          break;
        case 'SEAT_LIMIT_REACHED':
          showError(t('hold.limit') + released, t('hold.limitNext'));
          break;
        default: {
          const [first, next] = explain(failure, t('doing.holding', { seat: failedSeat }));
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
    announce(got.length === 1 ? t('hold.announceOne') : t('hold.announceMany', { count: got.length }));
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
      showError(t('hold.lapsedBefore', { seats: lapsed.join(', ') }),
        kept.length ? t('hold.stillYours') : t('hold.pickAgain'));
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
      el('td', { text: t('hold.seatCell', { seat: hold.seatId }) }),
      el('td', { text: hold.grade }),
      el('td', { text: money(hold.price) }),
      el('td', { text: hold.paid ? t('hold.paid') : t('hold.held') })));
    $('held-rows').replaceChildren(...rows);
    const due = unpaid().reduce((sum, hold) => sum + hold.price, 0);
    $('held-total').textContent = money(due);
    $('balance').textContent = state.balance === null ? '\u2013' : money(state.balance);
    const missing = missingAmount();
    const charge = $('charge-button');
    const pay = $('pay-button');
    pay.textContent = t('hold.payAmount', { amount: money(due) });
    if (missing !== null && missing > 0) {
      charge.hidden = false;
      charge.textContent = t('hold.addAmount', { amount: money(missing) });
      $('balance-hint').textContent = t('hold.short', { amount: money(missing) });
      pay.disabled = true;
    } else {
      charge.hidden = true;
      $('balance-hint').textContent = missing === null ? '' : t('hold.enough');
      pay.disabled = state.paying;
    }
  }

  async function refreshBalance() {
    try {
      const answer = await api('GET', `/api/users/${user}/balance`, { token: false });
      state.balance = answer.balance;
    } catch (failure) {
      if (failure.code === 'NOT_FOUND') {
        showError(t('hold.noUser', { user }), t('hold.noUserNext'));
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
        announce(t('hold.lastMinute'));
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
    showError(t('hold.lapsed', { seats: seats.join(', ') }), t('hold.pickAgain'));
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
        showError(...explain(failure, t('doing.releasing', { seat: hold.seatId })));
        return;
      }
    }
    done();
    state.holds = state.holds.filter((hold) => hold.paid);
    rememberHolds();
    notice(t('hold.released', { seats: open.map((hold) => hold.seatId).join(', ') }));
    await backToSeats();
  }

  // ---- Money ------------------------------------------------------------------------------------

  async function chargeMissing() {
    clearError();
    const amount = missingAmount();
    if (!amount) return;
    const done = busy($('charge-button'), t('money.adding'));
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
      notice(t('money.added', { amount: money(amount), balance: money(answer.balance) }));
      done();
      renderHold();
      $('pay-button').focus();
    } catch (failure) {
      done();
      if (!failure.retryable && failure.code !== 'IDEMPOTENCY_CONFLICT') {
        state.chargeKey = null;
        memory.set('chargeKey', null);
      }
      showError(...explain(failure, t('doing.charging')));
      renderHold();
    }
  }

  async function payAll() {
    clearError();
    const open = unpaid();
    if (!open.length) return;
    state.paying = true;
    const done = busy($('pay-button'), t('money.paying'));
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
          showError(...explain(failure, t('doing.newTurn')));
          return;
        }
        rememberToken(view.token);
        if (view.status !== 'ACTIVE') {
          finish();
          stopCountdown();
          state.status = null;
          showSteps([]);
          showError(t('money.backInLine'), t('money.backInLineNext'));
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
        showError(t('money.tooLow'), t('money.addThenPay', { amount: money(missingAmount() || hold.price) }));
        return;
      case 'RESERVATION_NOT_PAYABLE':
        state.holds = state.holds.filter((h) => h !== hold);
        rememberHolds();
        showError(t('money.notPayable', { seat: hold.seatId }),
          unpaid().length ? t('money.payOthers') : t('hold.pickAgain'));
        if (unpaid().length) renderHold();
        else if (state.holds.length) showConfirmation();
        else await backToSeats();
        return;
      case 'TOKEN_INVALID':
      case 'TOKEN_MISSING':
      case 'TOKEN_USER_MISMATCH':
        stopCountdown();
        await lostPlace(t('money.turnEnded'));
        return;
      default:
        showError(...explain(failure, t('doing.paying', { seat: hold.seatId })));
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
      el('p', {}, el('strong', { text: t('done.paid', { amount: money(total) }) }),
        ` ${first.concertTitle || ''}${Number.isNaN(when) ? '' : `, ${dateTime.format(new Date(when))}`}`),
      el('ul', {}, ...paid.map((hold) => el('li', {}, phrase('done.item', {
        seat: hold.seatId,
        grade: hold.grade,
        number: el('strong', { 'data-reservation-id': hold.reservationId, text: String(hold.reservationId) }),
      })))),
      el('p', { className: 'hint', text: t('done.keep') }));
    $('line').hidden = true;
    showSteps(['done'], 'done-title');
    const numbers = paid.map((h) => h.reservationId).join(', ');
    announce(paid.length === 1 ? t('done.announceOne', { numbers }) : t('done.announceMany', { numbers }));
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
    $('sign-in-button').addEventListener('click', () => { clearError(); signIn(); });
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
    await loadWords();
    wire();
    if (!(await knowTheBuyer())) return;
    recall();
    if (identity.mode === 'off' && !userIsValid) {
      showError(t('page.badUser', { user: userParam }), t('page.badUserNext'));
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
    showError(t('page.unexpected'), t('page.unexpectedNext'));
  });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', () => { start(); });
  } else {
    start();
  }
})();
