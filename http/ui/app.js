// The durable dashboard: plain JavaScript, no dependencies. Every value from the API is user
// data (instance ids, names, payloads) and is put on the page as text (textContent and
// createElement only; never innerHTML), so an id like <img src=x onerror=alert(1)> shows as
// those characters. Views: #/ (instances), #/instance/<id>, #/hosts, #/audit.
'use strict';

const state = {
  token: sessionStorage.getItem('durable.token') || '',
  stream: null,        // the live event stream of the current view (an AbortController)
  timers: [],          // intervals of the current view
  lastEventId: null,   // the last change-feed sequence seen (for Last-Event-ID)
};

// ---- small helpers ----
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
function fmtTime(ms) {
  if (ms === null || ms === undefined) return '';
  const d = new Date(ms);
  return d.toISOString().replace('T', ' ').replace('Z', '');
}
function fmtDuration(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return '';
  if (ms < 1000) return ms + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(2) + ' s';
  return (ms / 60000).toFixed(1) + ' min';
}
function json(v) { return v === undefined || v === null ? '' : JSON.stringify(v, null, 2); }
function statusBadge(s) { return el('span', { class: 'status ' + String(s), 'data-status': s }, s); }
function instanceHref(id) { return '#/instance/' + encodeURIComponent(id); }
function instanceLink(id) { return el('a', { href: instanceHref(id), class: 'instance-link' }, id); }
function notice(text, ok) {
  const n = document.getElementById('notice');
  if (!text) { n.hidden = true; return; }
  n.hidden = false;
  n.className = ok ? 'ok' : '';
  n.textContent = text;
}

// ---- the API ----
class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}
async function api(path, options) {
  const headers = { 'Accept': 'application/json' };
  if (state.token) headers['Authorization'] = 'Bearer ' + state.token;
  const init = { method: 'GET', headers, cache: 'no-store' };
  if (options && options.method) init.method = options.method;
  if (options && options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  const res = await fetch(path, init);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const err = body && body.error ? body.error : { code: 'http_' + res.status, message: res.statusText };
    let message = err.message;
    if (res.status === 401) message = 'unauthorized: this server needs a bearer token (enter it above)';
    throw new ApiError(res.status, err.code, message);
  }
  return body;
}
function showError(e) { notice(e instanceof ApiError ? e.message + ' (' + e.status + ')' : String(e)); }

// ---- the live stream (SSE over fetch, so the token can go in a header) ----
function setLive(on) {
  const l = document.getElementById('live');
  l.className = 'live ' + (on ? 'on' : 'off');
  l.textContent = on ? 'live' : 'offline';
}
function openStream(instance, onMessage) {
  closeStream();
  const ctl = new AbortController();
  state.stream = ctl;
  let retryMs = 2000;
  const connect = async () => {
    if (ctl.signal.aborted) return;
    const headers = {};
    if (state.token) headers['Authorization'] = 'Bearer ' + state.token;
    if (state.lastEventId !== null) headers['Last-Event-ID'] = String(state.lastEventId);
    const url = '/api/v1/events' + (instance ? '?instance=' + encodeURIComponent(instance) : '');
    try {
      const res = await fetch(url, { headers, signal: ctl.signal, cache: 'no-store' });
      if (!res.ok) throw new ApiError(res.status, 'stream', 'live stream refused: ' + res.status);
      setLive(true);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      let msg = { event: 'message', data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          let line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (line === '') {
            if (msg.id !== null) state.lastEventId = msg.id;
            if (msg.data.length) onMessage(msg.event, JSON.parse(msg.data.join('\n')));
            msg = { event: 'message', data: [], id: null };
            continue;
          }
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') msg.event = val;
          else if (field === 'data') msg.data.push(val);
          else if (field === 'id') msg.id = val;
          else if (field === 'retry' && /^\d+$/.test(val)) retryMs = parseInt(val, 10);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    setLive(false);
    if (!ctl.signal.aborted) setTimeout(connect, retryMs);
  };
  connect();
}
function closeStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
  setLive(false);
}

// Calls fn at most once per `ms`, the last call winning.
function throttle(fn, ms) {
  let timer = null, again = false;
  return () => {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(() => { timer = null; if (again) { again = false; fn(); } }, ms);
  };
}

// ---- view: instances ----
const STATUSES = ['Pending', 'Running', 'Suspended', 'Completed', 'Failed', 'Terminated'];

function viewInstances(view, params) {
  const filters = {
    status: params.get('status') || '', name: params.get('name') || '', prefix: params.get('prefix') || '',
    from: params.get('from') || '', to: params.get('to') || '',
  };
  let after = null;
  const pagesBefore = [];
  const counts = el('div', { class: 'counts', id: 'counts' });
  const statusSel = el('select', { name: 'status', id: 'filter-status' }, el('option', { value: '' }, 'any'),
    STATUSES.map(s => el('option', { value: s, selected: filters.status === s }, s)));
  const nameIn = el('input', { name: 'name', id: 'filter-name', value: filters.name, placeholder: 'orchestration' });
  const prefixIn = el('input', { name: 'prefix', id: 'filter-prefix', value: filters.prefix, placeholder: 'id starts with' });
  const fromIn = el('input', { name: 'from', id: 'filter-from', value: filters.from, placeholder: '2026-01-01T00:00:00Z' });
  const toIn = el('input', { name: 'to', id: 'filter-to', value: filters.to, placeholder: 'ms or UTC time' });
  const form = el('form', { class: 'filters', id: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (statusSel.value) q.set('status', statusSel.value);
    for (const [k, input] of [['name', nameIn], ['prefix', prefixIn], ['from', fromIn], ['to', toIn]]) {
      if (input.value.trim()) q.set(k, input.value.trim());
    }
    location.hash = '#/' + (q.toString() ? '?' + q.toString() : '');
  } },
  el('label', {}, 'status', statusSel), el('label', {}, 'name', nameIn), el('label', {}, 'id prefix', prefixIn),
  el('label', {}, 'created from', fromIn), el('label', {}, 'created before', toIn),
  el('button', { type: 'submit', id: 'apply-filters' }, 'Filter'),
  el('a', { href: '#/' }, 'clear'));
  const tbody = el('tbody', { id: 'instance-rows' });
  const table = el('table', { id: 'instances' },
    el('thead', {}, el('tr', {}, ['Instance', 'Orchestration', 'Status', 'Created', 'Updated', 'Custom status'].map(h => el('th', {}, h)))),
    tbody);
  const more = el('div', { class: 'actions' });
  clear(view).append(el('h1', {}, 'Instances'), counts, form, table, more);

  const rows = new Map();  // id -> row element
  function renderRow(s) {
    const tr = el('tr', { 'data-id': s.id },
      el('td', { class: 'id' }, instanceLink(s.id)), el('td', {}, s.name),
      el('td', { class: 'status-cell' }, statusBadge(s.status)), el('td', {}, fmtTime(s.created_at_ms)),
      el('td', { class: 'updated-cell' }, fmtTime(s.updated_at_ms)),
      el('td', {}, s.custom_status === null ? '' : JSON.stringify(s.custom_status)));
    rows.set(s.id, tr);
    return tr;
  }
  async function loadCounts() {
    try {
      const c = await api('/api/v1/counts');
      clear(counts);
      counts.append(el('span', { class: 'count', 'data-status': '' }, 'All ' + c.total));
      for (const s of STATUSES) {
        const chip = el('span', { class: 'count', 'data-status': s, id: 'count-' + s,
          onclick: () => { location.hash = '#/?status=' + s; } }, statusBadge(s), ' ' + c.counts[s]);
        counts.append(chip);
      }
    } catch (e) { showError(e); }
  }
  async function loadPage() {
    const q = new URLSearchParams({ limit: '50' });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (after) q.set('after', after);
    try {
      const page = await api('/api/v1/instances?' + q.toString());
      notice('');
      clear(tbody);
      rows.clear();
      for (const s of page.instances) tbody.append(renderRow(s));
      if (!page.instances.length) tbody.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'no instances match')));
      clear(more);
      if (pagesBefore.length) {
        more.append(el('button', { onclick: () => { after = pagesBefore.pop(); loadPage(); } }, 'Newer'));
      }
      if (page.next) {
        more.append(el('button', { id: 'next-page', onclick: () => { pagesBefore.push(after); after = page.next; loadPage(); } }, 'Older'));
      }
    } catch (e) { showError(e); }
  }
  const refreshCounts = throttle(loadCounts, 1000);
  const refreshPage = throttle(loadPage, 1000);
  loadCounts();
  loadPage();
  openStream('', (event, data) => {
    if (event === 'refetch') { refreshCounts(); refreshPage(); return; }
    if (event !== 'commit') return;
    let unknown = false;
    for (const e of data.events) {
      const tr = rows.get(e.instance);
      if (tr) {
        const cell = tr.querySelector('.status-cell');
        clear(cell).append(statusBadge(e.status));
        clear(tr.querySelector('.updated-cell')).append(fmtTime(e.event.ts));
      } else {
        unknown = true;
      }
    }
    refreshCounts();
    // New instances appear on the first page; other pages keep their rows still.
    if (unknown && after === null) refreshPage();
  });
}

// ---- view: one instance ----
function timelineRows(events) {
  // Pairs each scheduling event with its outcome by task id; an activity scheduled again
  // after its last call failed is a retry (a durable retry policy schedules it anew).
  const byTask = new Map();
  const rows = [];
  const lastByName = new Map();
  let start = null;
  for (const { seq, event: e } of events) {
    if (start === null) start = e.ts;
    const t = e.t;
    if (t === 'TaskScheduled' || t === 'TimerCreated' || t === 'SubOrchestrationCreated') {
      const kind = t === 'TaskScheduled' ? 'activity' : t === 'TimerCreated' ? 'timer' : 'sub-orchestration';
      let attempt = 1;
      const last = kind === 'activity' ? lastByName.get(e.name) : undefined;
      if (last && last.outcome === 'failed') attempt = last.attempt + 1;
      const row = { seq, kind, name: e.name || '', task: e.task_id, start: e.ts, end: null, outcome: 'scheduled',
        detail: kind === 'timer' ? 'fires at ' + fmtTime(e.fire_at) : e.input, target: e.target_instance, attempt };
      byTask.set(e.task_id, row);
      if (kind === 'activity') lastByName.set(e.name, row);
      rows.push(row);
    } else if (t === 'TaskCompleted' || t === 'TimerFired' || t === 'SubOrchestrationCompleted') {
      const row = byTask.get(e.task_id);
      if (row) { row.end = e.ts; row.outcome = t === 'TimerFired' ? 'fired' : 'completed'; if (e.result !== undefined) row.detail = e.result; }
    } else if (t === 'TaskFailed' || t === 'SubOrchestrationFailed') {
      const row = byTask.get(e.task_id);
      if (row) { row.end = e.ts; row.outcome = 'failed'; row.detail = e.failure; }
    } else {
      let detail = null;
      if (t === 'EventRaised' || t === 'EventSent') detail = e.input;
      else if (t === 'ExecutionStarted' || t === 'ContinuedAsNew') detail = e.input;
      else if (t === 'ExecutionCompleted') detail = e.final_status === 'Failed' ? e.failure : e.result;
      else if (e.reason !== undefined) detail = e.reason;
      rows.push({ seq, kind: t, name: e.name || e.final_status || '', start: e.ts, end: null, outcome: '', detail,
        target: e.target_instance, attempt: null });
    }
  }
  return { rows, start: start || 0 };
}

function viewInstance(view, id) {
  const head = el('div', { id: 'instance-head' });
  const actions = el('div', { class: 'actions', id: 'actions' });
  const info = el('div', { class: 'grid', id: 'instance-info' });
  const children = el('div', { id: 'children' });
  const tbody = el('tbody', { id: 'timeline-rows' });
  const timeline = el('table', { id: 'timeline' },
    el('thead', {}, el('tr', {}, ['#', 'Kind', 'Name', 'Attempt', 'Started', 'Took', '', 'Outcome', 'Detail'].map(h => el('th', {}, h)))),
    tbody);
  clear(view).append(head, actions, info, children, el('h2', {}, 'Timeline'), timeline);
  let events = [];
  let nextSeq = 0;

  function act(action, body, confirmText) {
    return async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      try {
        await api('/api/v1/instances/' + encodeURIComponent(id) + '/' + action, { method: 'POST', body: body ? body() : {} });
        notice(action + ' accepted', true);
        if (action === 'purge') { location.hash = '#/'; return; }
        refreshState();
      } catch (e) {
        notice(action + ' refused: ' + e.message + (e instanceof ApiError ? ' (' + e.status + ')' : ''));
      }
    };
  }
  const reasonIn = el('input', { id: 'action-reason', placeholder: 'reason' });
  const eventName = el('input', { id: 'event-name', placeholder: 'event name' });
  const eventPayload = el('input', { id: 'event-payload', placeholder: 'payload (JSON)' });
  actions.append(
    reasonIn,
    el('button', { id: 'terminate', class: 'danger', onclick: act('terminate', () => ({ reason: reasonIn.value })) }, 'Terminate'),
    el('button', { id: 'suspend', onclick: act('suspend', () => ({ reason: reasonIn.value })) }, 'Suspend'),
    el('button', { id: 'resume', onclick: act('resume', () => ({ reason: reasonIn.value })) }, 'Resume'),
    el('span', { class: 'muted' }, '|'), eventName, eventPayload,
    el('button', { id: 'raise-event', onclick: async () => {
      let payload = null;
      if (eventPayload.value.trim()) {
        try { payload = JSON.parse(eventPayload.value); } catch (e) { notice('the payload is not JSON: ' + e.message); return; }
      }
      await act('raise-event', () => ({ name: eventName.value, payload }))();
    } }, 'Raise event'),
    el('span', { class: 'muted' }, '|'),
    el('button', { id: 'purge', class: 'danger', onclick: act('purge', null, 'Delete this instance and its history?') }, 'Purge'));

  function renderState(s) {
    clear(head).append(el('h1', {}, el('span', { id: 'instance-id' }, s.id), ' ', el('span', { id: 'instance-status' }, statusBadge(s.status))));
    clear(info);
    const add = (k, v) => info.append(el('div', { class: 'k' }, k), el('div', {}, v));
    add('orchestration', s.version ? s.name + ' (version ' + s.version + ')' : s.name);
    add('created', fmtTime(s.created_at_ms));
    add('updated', fmtTime(s.updated_at_ms));
    if (s.completed_at_ms !== null) add('finished', fmtTime(s.completed_at_ms) + ' (took ' + fmtDuration(s.completed_at_ms - s.created_at_ms) + ')');
    if (s.parent_id !== null) add('parent', instanceLink(s.parent_id));
    if (s.lease_owner !== null) add('lease', s.lease_owner + ' until ' + fmtTime(s.lease_expires_at_ms));
    if (s.custom_status !== null) add('custom status', el('pre', {}, json(s.custom_status)));
    add('input', el('pre', { id: 'instance-input' }, json(s.input)));
    if (s.output !== null) add('output', el('pre', { id: 'instance-output' }, json(s.output)));
    if (s.error !== null) {
      const chain = el('div', { id: 'instance-error' });
      for (let f = s.error; f; f = f.inner) {
        chain.append(el('div', {}, el('strong', {}, f.type || 'error'), ': ', f.message || '',
          f.task ? el('span', { class: 'muted' }, ' (' + f.task.kind + ' ' + f.task.name + ')') : null),
        f.details ? el('pre', {}, f.details) : null);
      }
      add('error', chain);
    }
    clear(children);
    if (s.children.length) {
      children.append(el('h2', {}, 'Sub-orchestrations'), el('table', {}, el('tbody', {},
        s.children.map(c => el('tr', {}, el('td', { class: 'id' }, instanceLink(c.id)), el('td', {}, c.name), el('td', {}, statusBadge(c.status)))))));
    }
  }
  function renderTimeline() {
    const { rows, start } = timelineRows(events);
    let last = start;
    for (const r of rows) last = Math.max(last, r.end || r.start);
    const span = Math.max(1, last - start);
    clear(tbody);
    for (const r of rows) {
      const took = r.end !== null ? r.end - r.start : null;
      const bar = el('div', { class: 'bar' + (r.outcome === 'failed' ? ' failed' : r.kind === 'timer' ? ' timer' : '') });
      bar.style.marginLeft = ((r.start - start) / span * 100).toFixed(2) + '%';
      bar.style.width = (took !== null ? took / span * 100 : 0.5).toFixed(2) + '%';
      let detail = r.detail;
      if (typeof detail !== 'string') detail = json(detail);
      const tr = el('tr', { 'data-kind': r.kind },
        el('td', { class: 'num' }, r.seq), el('td', {}, r.kind),
        el('td', {}, r.target ? instanceLink(r.target) : r.name, r.target ? el('span', { class: 'muted' }, ' ' + r.name) : null),
        el('td', { class: 'num' }, r.attempt && r.attempt > 1 ? 'retry ' + (r.attempt - 1) : r.attempt || ''),
        el('td', {}, fmtTime(r.start)), el('td', { class: 'num' }, fmtDuration(took)),
        el('td', { class: 'bar-cell' }, bar), el('td', {}, r.outcome), el('td', {}, el('pre', {}, detail)));
      tbody.append(tr);
    }
  }
  async function loadState() {
    try {
      renderState(await api('/api/v1/instances/' + encodeURIComponent(id)));
      notice('');
    } catch (e) { showError(e); }
  }
  async function loadHistory() {
    try {
      let from = 0;
      const all = [];
      for (;;) {
        const page = await api('/api/v1/instances/' + encodeURIComponent(id) + '/history?from=' + from);
        all.push(...page.events);
        if (page.next === null) break;
        from = page.next;
      }
      events = all;
      nextSeq = all.length ? all[all.length - 1].seq + 1 : 0;
      renderTimeline();
    } catch (e) { showError(e); }
  }
  const refreshState = throttle(loadState, 500);
  const refreshHistory = throttle(loadHistory, 500);
  loadState();
  loadHistory();
  openStream(id, (event, data) => {
    if (event === 'refetch') { refreshState(); refreshHistory(); return; }
    if (event !== 'commit') return;
    let gap = false;
    for (const e of data.events) {
      if (e.instance !== id) continue;
      if (e.seq < nextSeq) continue;          // seen already (a resumed stream)
      if (e.seq > nextSeq) { gap = true; continue; }
      events.push({ seq: e.seq, event: e.event });
      nextSeq = e.seq + 1;
      clear(document.getElementById('instance-status')).append(statusBadge(e.status));
    }
    if (gap) refreshHistory(); else renderTimeline();
    refreshState();
  });
}

// ---- view: hosts and leases ----
function viewHosts(view) {
  const hostsBody = el('tbody', { id: 'host-rows' });
  const leasesBody = el('tbody', { id: 'lease-rows' });
  const takeovers = el('tbody', { id: 'takeover-rows' });
  clear(view).append(el('h1', {}, 'Hosts'),
    el('table', { id: 'hosts' }, el('thead', {}, el('tr', {}, ['Host', 'Machine', 'PID', 'State', 'Heartbeat', 'Lease', 'Leases held', 'Runs'].map(h => el('th', {}, h)))), hostsBody),
    el('h2', {}, 'Leases'),
    el('table', { id: 'leases' }, el('thead', {}, el('tr', {}, ['Instance', 'Orchestration', 'Status', 'Owner', 'Expires'].map(h => el('th', {}, h)))), leasesBody),
    el('h2', {}, 'Takeovers'),
    el('p', { class: 'muted' }, 'A host claimed an instance whose owner had stopped renewing its lease (from the audit log, newest first), and owner changes seen while this page is open.'),
    el('table', { id: 'takeovers' }, el('thead', {}, el('tr', {}, ['When', 'Instance', 'By', 'Why'].map(h => el('th', {}, h)))), takeovers));
  const owners = new Map();  // instance -> owner last seen
  const seen = [];           // owner changes seen by this page: [when, instance, from, to]
  async function load() {
    try {
      const [h, l, t] = await Promise.all([api('/api/v1/hosts'), api('/api/v1/leases'), api('/api/v1/audit?action=takeover&limit=50')]);
      notice('');
      clear(hostsBody);
      for (const x of h.hosts) {
        const stateText = x.stopped_at_ms !== null ? 'stopped' : x.live ? 'live' : 'silent (presumed dead)';
        hostsBody.append(el('tr', {}, el('td', { class: 'id' }, x.id), el('td', {}, x.hostname), el('td', { class: 'num' }, x.pid),
          el('td', { class: x.live ? '' : 'muted' }, stateText),
          el('td', {}, fmtDuration(h.now_ms - x.heartbeat_at_ms) + ' ago'), el('td', {}, fmtDuration(x.lease_ms)),
          el('td', { class: 'num' }, x.leases.length),
          el('td', {}, el('div', {}, 'orchestrations: ' + (x.orchestrations.join(', ') || '-')),
            el('div', { class: 'muted' }, 'activities: ' + (x.activities.join(', ') || '-')))));
      }
      clear(leasesBody);
      for (const x of l.leases) {
        const expires = x.expired ? 'expired ' + fmtDuration(l.now_ms - x.expires_at_ms) + ' ago: any host may take it over'
          : 'in ' + fmtDuration(x.expires_at_ms - l.now_ms);
        leasesBody.append(el('tr', {}, el('td', { class: 'id' }, instanceLink(x.instance_id)), el('td', {}, x.name),
          el('td', {}, statusBadge(x.status)), el('td', { class: x.owner_live ? 'id' : 'id muted' }, x.owner),
          el('td', { class: x.expired ? 'expired' : '' }, expires)));
        const before = owners.get(x.instance_id);
        if (before !== undefined && before !== x.owner) seen.unshift([l.now_ms, x.instance_id, x.owner, 'lease moved from ' + before]);
        owners.set(x.instance_id, x.owner);
      }
      clear(takeovers);
      const rows = seen.concat(t.entries.map(e => [e.at_ms, e.instance_id, e.actor.replace(/^host:/, ''), e.detail || '']));
      rows.sort((a, b) => b[0] - a[0]);
      for (const [when, instance, by, why] of rows.slice(0, 50)) {
        takeovers.append(el('tr', {}, el('td', {}, fmtTime(when)), el('td', { class: 'id' }, instance === null ? '' : instanceLink(instance)),
          el('td', { class: 'id' }, by), el('td', {}, why)));
      }
    } catch (e) { showError(e); }
  }
  load();
  state.timers.push(setInterval(load, 2000));
}

// ---- view: audit log ----
function viewAudit(view) {
  const tbody = el('tbody', { id: 'audit-rows' });
  clear(view).append(el('h1', {}, 'Audit log'),
    el('table', { id: 'audit' }, el('thead', {}, el('tr', {}, ['When', 'Actor', 'Action', 'Instance', 'Detail'].map(h => el('th', {}, h)))), tbody));
  (async () => {
    try {
      const a = await api('/api/v1/audit?limit=500');
      for (const x of a.entries) {
        tbody.append(el('tr', {}, el('td', {}, fmtTime(x.at_ms)), el('td', {}, x.actor), el('td', {}, x.action),
          el('td', { class: 'id' }, x.instance_id === null ? '' : instanceLink(x.instance_id)), el('td', {}, x.detail || '')));
      }
    } catch (e) { showError(e); }
  })();
}

// ---- routing ----
function route() {
  closeStream();
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  state.lastEventId = null;
  notice('');
  const view = document.getElementById('view');
  const hash = location.hash || '#/';
  for (const a of document.querySelectorAll('header nav a')) a.classList.remove('active');
  if (hash.startsWith('#/instance/')) {
    viewInstance(view, decodeURIComponent(hash.slice('#/instance/'.length)));
  } else if (hash.startsWith('#/hosts')) {
    document.getElementById('nav-hosts').classList.add('active');
    viewHosts(view);
  } else if (hash.startsWith('#/audit')) {
    document.getElementById('nav-audit').classList.add('active');
    viewAudit(view);
  } else {
    document.getElementById('nav-instances').classList.add('active');
    const q = hash.indexOf('?');
    viewInstances(view, new URLSearchParams(q >= 0 ? hash.slice(q + 1) : ''));
  }
}

document.getElementById('token').value = state.token;
document.getElementById('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = document.getElementById('token').value.trim();
  sessionStorage.setItem('durable.token', state.token);
  route();
});
window.addEventListener('hashchange', route);
route();
