// The page of one lanpeer peer. It talks to its own peer over a WebSocket on the same address
// (see src/web/mod.rs and src/web/json.rs for the messages).
//
// Rules: text from peers is only ever inserted as text (textContent / text nodes), never as HTML.
// A person is shown by their label (the name, with the start of the id when two share it). The
// teacher's badge is shown only for the room's verified teacher; anyone else who says they teach
// is shown as unverified, and their exercises warn before an answer is written.
'use strict';

(function () {
  const CHAT_LIMIT = 500;

  const $ = (id) => document.getElementById(id);

  // Build an element; children that are strings become text nodes.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'className') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'for') e.setAttribute(k, v);
        else e[k] = v;
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function clock(ms) {
    const d = new Date(ms);
    if (Number.isNaN(d.getTime())) return '';
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function timeEl(ms) {
    const d = new Date(ms);
    return el('time', { dateTime: Number.isNaN(d.getTime()) ? '' : d.toISOString(), text: clock(ms) });
  }

  // ---------------------------------------------------------------------------------------------
  // State

  const state = {
    me: null, // {id, name, room, role, room_code}
    peers: new Map(), // id -> {id, name, label, role, verified, state, addr}
    chatIds: new Set(),
    problems: new Map(), // id -> {msg, answers: Map(id -> {msg, feedbackIds: Set, el}), el}
    answerProblem: new Map(), // answer id -> problem id
    pendingAnswers: new Map(), // problem id -> [answer] (arrived before their problem)
    pendingFeedback: new Map(), // answer id -> [feedback]
  };

  const isMe = (id) => state.me && state.me.id === id;

  // Does another peer this page knows go by `name` (compared without case)?
  function sharedName(id, name) {
    const key = name.toLowerCase();
    for (const p of state.peers.values()) {
      if (p.id !== id && typeof p.name === 'string' && p.name.toLowerCase() === key) return true;
    }
    return false;
  }

  // A person as shown: the label their peer reports, or, when it is the bare name and another
  // person here goes by the same name (who joined after it was reported), the name with the start
  // of the id, as the peer itself writes it.
  function labelFor(id, name, label) {
    const n = name || '';
    if (label && label !== n) return label;
    if (id && n && sharedName(id, n)) return n + ' (' + id.slice(0, 8) + ')';
    return label || n || (id ? id.slice(0, 8) : '');
  }

  function labelOf(id) {
    if (!id) return '';
    if (isMe(id)) return state.me.name;
    const p = state.peers.get(id);
    return p ? labelFor(p.id, p.name, p.label) : id.slice(0, 8);
  }

  // An author's label, kept up to date by relabel() as people come and go.
  function who(className, id, name, label, own) {
    const s = el('span', { className, 'data-from': id || '', 'data-name': name || '', 'data-label': label || '', 'data-own': own ? '1' : '' });
    s.textContent = whoText(s);
    return s;
  }

  function whoText(s) {
    const d = s.dataset;
    return labelFor(d.from, d.name, d.label) + (d.own ? ' (you)' : '');
  }

  function relabel() {
    for (const s of document.querySelectorAll('span[data-from]')) {
      const t = whoText(s);
      if (s.textContent !== t) s.textContent = t;
    }
  }

  // What a role claim comes to: 'teacher' (the room's teacher, verified), 'unverified' (says
  // they teach, in any wording, without being the verified teacher), or null (another role).
  function standing(role, verified) {
    if (typeof role !== 'string' || !role) return null;
    if (role === 'teacher' && verified === true) return 'teacher';
    if (/teach/i.test(role)) return 'unverified';
    return null;
  }

  const UNVERIFIED_TITLE = 'Says they are the teacher, but their key is not the room teacher\'s';

  // The badge of a claim to teach, or null.
  function trustBadge(role, verified) {
    switch (standing(role, verified)) {
      case 'teacher':
        return el('span', { className: 'badge teacher', text: 'teacher', title: 'The room\'s teacher (verified)' });
      case 'unverified':
        return el('span', { className: 'badge unverified', text: 'teacher? UNVERIFIED', title: UNVERIFIED_TITLE });
      default:
        return null;
    }
  }

  // The badge of any role: a claim to teach as above, another role as it is written.
  function roleBadge(role, verified) {
    if (typeof role !== 'string' || !role) return null;
    return trustBadge(role, verified) || el('span', { className: 'badge', text: role });
  }

  const myVerified = () => (state.me && state.me.role === 'teacher' ? true : null);
  const peerStanding = (p) => standing(p.role, p.verified);

  // ---------------------------------------------------------------------------------------------
  // Notices and connection status

  function notice(text) {
    $('notice-text').textContent = text;
    $('notice').hidden = false;
  }
  $('notice-close').addEventListener('click', () => {
    $('notice').hidden = true;
  });

  function setConn(ok, text) {
    $('conn').classList.toggle('ok', ok);
    $('conn-text').textContent = text;
  }

  function renderMe() {
    const w = $('whoami');
    w.textContent = '';
    const teacher = !!(state.me && state.me.role === 'teacher' && state.me.room_code);
    $('room-code').hidden = !teacher;
    if (!state.me) return;
    w.append('You are ', el('strong', { text: state.me.name }), ' in room ', el('strong', { text: state.me.room }));
    document.title = 'lanpeer · ' + state.me.room;
    if (teacher) {
      $('room-code-text').textContent = state.me.room_code;
      $('room-code-cmd').textContent = 'lanpeer --teacher ' + state.me.room_code;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // People

  function renderPeople() {
    const list = $('people');
    list.textContent = '';
    if (state.me) {
      list.append(el('li', { className: 'person me' }, el('span', { className: 'name', text: state.me.name }), roleBadge(state.me.role, myVerified()), el('span', { className: 'you', text: '(you)' })));
    }
    const peers = sortedPeers();
    const chosen = $('chat-to').value;
    for (const p of peers) {
      const label = labelOf(p.id);
      const b = el(
        'button',
        {
          type: 'button',
          className: 'person' + (peerStanding(p) === 'unverified' ? ' unverified' : ''),
          'data-peer-id': p.id,
          'aria-pressed': String(chosen === p.id),
          title: 'Write to ' + label + ' privately',
        },
        el('span', { className: 'name', text: label }),
        roleBadge(p.role, p.verified),
        p.state === 'reconnecting' ? el('span', { className: 'badge muted', text: 'reconnecting' }) : null,
      );
      b.addEventListener('click', () => choose(chosen === p.id ? '' : p.id));
      list.append(el('li', null, b));
    }
    $('people-count').textContent = peers.length ? String(peers.length + 1) : '';
    $('people-hint').textContent = peers.length ? 'Choose a person to write to them privately.' : 'Nobody else is online yet.';
    renderRecipients();
    relabel();
  }

  // The verified teacher first, then everyone by label.
  function sortedPeers() {
    return [...state.peers.values()].sort((a, b) => {
      const t = (peerStanding(b) === 'teacher') - (peerStanding(a) === 'teacher');
      return t || labelOf(a.id).localeCompare(labelOf(b.id));
    });
  }

  function renderRecipients() {
    const sel = $('chat-to');
    const chosen = sel.value;
    sel.textContent = '';
    sel.append(el('option', { value: '', text: 'Everyone' }));
    for (const p of sortedPeers()) {
      const s = peerStanding(p);
      const role = s === 'teacher' ? ' (teacher)' : s === 'unverified' ? ' (teacher? UNVERIFIED)' : '';
      sel.append(el('option', { value: p.id, text: labelOf(p.id) + role + ', privately' }));
    }
    if (chosen && !state.peers.has(chosen)) {
      notice(labelOf(chosen) + ' has left; your next message goes to everyone.');
      sel.value = '';
    } else {
      sel.value = chosen;
    }
    updatePlaceholder();
  }

  function choose(id) {
    $('chat-to').value = id;
    renderPeople();
    $('message').focus();
  }

  function updatePlaceholder() {
    const to = $('chat-to').value;
    $('message').placeholder = to ? 'Write to ' + labelOf(to) + ' privately' : 'Write to everyone';
    $('chat-form').classList.toggle('private', !!to);
  }
  $('chat-to').addEventListener('change', () => renderPeople());

  // ---------------------------------------------------------------------------------------------
  // Chat

  const author = (m) => who('from', m.from, m.from_name, m.from_label, m.own);

  function addChat(m) {
    if (state.chatIds.has(m.id)) return;
    state.chatIds.add(m.id);
    const log = $('chat-log');
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    let privateNote = null;
    if (m.to) {
      privateNote = el('span', { className: 'badge private', text: m.own ? 'private to ' + labelOf(m.to) : 'private, to you' });
    }
    const li = el(
      'li',
      { className: 'msg' + (m.own ? ' own' : '') + (m.to ? ' private' : ''), 'data-id': m.id },
      el('div', { className: 'msg-head' }, author(m), trustBadge(m.from_role, m.from_verified), privateNote, timeEl(m.time_ms)),
      el('div', { className: 'msg-text', text: m.text }),
    );
    log.append(li);
    while (log.children.length > CHAT_LIMIT) {
      state.chatIds.delete(log.firstElementChild.dataset.id);
      log.firstElementChild.remove();
    }
    $('chat-empty').hidden = true;
    if (nearBottom || m.own) log.scrollTop = log.scrollHeight;
  }

  // ---------------------------------------------------------------------------------------------
  // Exercises

  function addProblem(m) {
    if (state.problems.has(m.id)) return;
    const mine = isMe(m.from);
    const answersList = el('ol', { className: 'answers' });
    const count = el('p', { className: 'answer-count' });
    const textarea = el('textarea', { rows: 3, 'aria-label': 'Your answer to ' + m.title, placeholder: 'Your answer (Ctrl+Enter sends)' });
    const unverified = !mine && standing(m.from_role, m.from_verified) === 'unverified';
    // Said before the answer box: whoever posted this is not the room's verified teacher.
    const warning = unverified
      ? el(
          'p',
          { className: 'unverified-note', role: 'alert' },
          el('strong', { text: 'Not the verified teacher. ' }),
          who('who', m.from, m.from_name, m.from_label, false),
          ' says they are the teacher, but their key is not the room teacher\'s.' +
            (m.private_answers ? ' Your answer would go to them only.' : '') +
            ' Check with your teacher before you answer.',
        )
      : null;
    const form = el('form', { className: 'answer-form', autocomplete: 'off' }, warning, textarea, el('button', { type: 'submit', text: 'Send answer' }));
    let quizNote = null;
    if (m.private_answers && mine) {
      quizNote = el('p', { className: 'quiz-note', text: 'Quiz: the answers come to you only.' });
    } else if (m.private_answers) {
      quizNote = el(
        'p',
        { className: 'quiz-note' + (unverified ? ' unverified' : '') },
        'Quiz: your answer goes to ',
        who('who', m.from, m.from_name, m.from_label, false),
        unverified ? ' only, who is NOT the verified teacher.' : ' only.',
      );
    }
    const article = el(
      'article',
      { className: 'problem' + (m.private_answers ? ' quiz' : ''), 'data-id': m.id },
      el(
        'header',
        null,
        el('h3', { text: m.title }),
        el('p', { className: 'meta' }, author(m), trustBadge(m.from_role, m.from_verified), timeEl(m.time_ms), m.private_answers ? el('span', { className: 'badge quiz', text: 'quiz' }) : null),
      ),
      m.body ? el('div', { className: 'problem-body', text: m.body }) : null,
      quizNote,
      count,
      answersList,
      mine && m.private_answers ? null : form,
    );
    const p = { msg: m, answers: new Map(), el: article, list: answersList, count };
    state.problems.set(m.id, p);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = textarea.value;
      if (!text.trim()) return;
      if (send({ cmd: 'answer', problem_id: m.id, text })) textarea.value = '';
    });
    textarea.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    $('problems').prepend(article);
    $('no-problems').hidden = true;
    updateCount(p);
    for (const a of state.pendingAnswers.get(m.id) || []) addAnswer(a);
    state.pendingAnswers.delete(m.id);
  }

  function updateCount(p) {
    const n = p.answers.size;
    const people = new Set([...p.answers.values()].map((a) => a.msg.from)).size;
    if (p.msg.private_answers && isMe(p.msg.from)) {
      p.count.textContent = people === 1 ? '1 person has answered.' : people + ' people have answered.';
      p.count.classList.add('quiz-count');
    } else {
      p.count.textContent = n === 0 ? 'No answers yet.' : n === 1 ? '1 answer' : n + ' answers';
    }
  }

  function addAnswer(a) {
    if (state.answerProblem.has(a.id)) return;
    const p = state.problems.get(a.problem_id);
    if (!p) {
      const waiting = state.pendingAnswers.get(a.problem_id) || [];
      if (!waiting.some((w) => w.id === a.id)) waiting.push(a);
      state.pendingAnswers.set(a.problem_id, waiting);
      return;
    }
    state.answerProblem.set(a.id, a.problem_id);
    const feedbackList = el('ul', { className: 'feedback' });
    const input = el('input', { type: 'text', 'aria-label': 'Feedback on the answer of ' + labelFor(a.from, a.from_name, a.from_label), placeholder: 'Feedback on this answer' });
    const form = el('form', { className: 'feedback-form', autocomplete: 'off' }, input, el('button', { type: 'submit', text: 'Send feedback' }));
    const li = el(
      'li',
      { className: 'answer' + (a.own ? ' own' : ''), 'data-id': a.id },
      el('p', { className: 'meta' }, author(a), trustBadge(a.from_role, a.from_verified), timeEl(a.time_ms), a.to ? el('span', { className: 'badge private', text: a.own ? 'to ' + labelOf(a.to) + ' only' : 'to you only' }) : null),
      el('pre', null, el('code', { text: a.text })),
      feedbackList,
      form,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = input.value;
      if (!text.trim()) return;
      if (send({ cmd: 'feedback', answer_id: a.id, text })) input.value = '';
    });
    p.answers.set(a.id, { msg: a, feedbackIds: new Set(), list: feedbackList });
    p.list.append(li);
    updateCount(p);
    for (const f of state.pendingFeedback.get(a.id) || []) addFeedback(f);
    state.pendingFeedback.delete(a.id);
  }

  function addFeedback(f) {
    const pid = state.answerProblem.get(f.answer_id);
    const ans = pid && state.problems.get(pid).answers.get(f.answer_id);
    if (!ans) {
      const waiting = state.pendingFeedback.get(f.answer_id) || [];
      if (!waiting.some((w) => w.id === f.id)) waiting.push(f);
      state.pendingFeedback.set(f.answer_id, waiting);
      return;
    }
    if (ans.feedbackIds.has(f.id)) return;
    ans.feedbackIds.add(f.id);
    ans.list.append(
      el(
        'li',
        { className: 'fb' + (f.own ? ' own' : ''), 'data-id': f.id },
        el('p', { className: 'meta' }, author(f), trustBadge(f.from_role, f.from_verified), timeEl(f.time_ms)),
        el('div', { className: 'fb-text', text: f.text }),
      ),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // History (first message of every connection): rebuild everything, keeping unsent drafts.

  function drafts() {
    const d = new Map();
    for (const t of document.querySelectorAll('.problem[data-id] textarea, .answer[data-id] input')) {
      if (t.value) d.set(t.closest('[data-id]').dataset.id, t.value);
    }
    return d;
  }

  function history(h) {
    const kept = drafts();
    state.me = h.me || state.me;
    state.peers = new Map((h.peers || []).map((p) => [p.id, p]));
    state.chatIds.clear();
    state.problems.clear();
    state.answerProblem.clear();
    state.pendingAnswers.clear();
    state.pendingFeedback.clear();
    $('chat-log').textContent = '';
    $('problems').textContent = '';
    $('chat-empty').hidden = (h.chat || []).length > 0;
    $('no-problems').hidden = (h.problems || []).length > 0;
    renderMe();
    renderPeople();
    for (const c of h.chat || []) addChat(c);
    for (const p of h.problems || []) {
      addProblem(p);
      for (const a of p.answers || []) {
        addAnswer(a);
        for (const f of a.feedback || []) addFeedback(f);
      }
    }
    for (const [id, text] of kept) {
      const holder = document.querySelector('[data-id="' + CSS.escape(id) + '"]');
      const t = holder && holder.querySelector(':scope > form textarea, :scope > form input');
      if (t && !t.value) t.value = text;
    }
  }

  function handle(ev) {
    switch (ev.event) {
      case 'history':
        history(ev);
        break;
      case 'ready':
        state.me = { id: ev.id, name: ev.name, room: ev.room, role: ev.role, room_code: ev.room_code };
        renderMe();
        renderPeople();
        break;
      case 'peer_joined':
        state.peers.set(ev.id, ev);
        renderPeople();
        break;
      case 'peer_left':
        state.peers.delete(ev.id);
        renderPeople();
        break;
      case 'chat':
        addChat(ev);
        break;
      case 'problem':
        addProblem(ev);
        break;
      case 'answer':
        addAnswer(ev);
        break;
      case 'feedback':
        addFeedback(ev);
        break;
      case 'error':
      case 'warning':
        notice(ev.message);
        break;
      default:
        break; // newer peers may add events: ignored
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The connection to the peer

  let ws = null;
  let retry = 500;

  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      notice('Not connected to your peer at the moment; try again in a moment.');
      return false;
    }
    ws.send(JSON.stringify(obj));
    return true;
  }

  function connect() {
    ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    ws.addEventListener('open', () => {
      retry = 500;
      setConn(true, 'Connected');
      document.body.classList.add('connected');
    });
    ws.addEventListener('message', (e) => {
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch {
        return;
      }
      handle(ev);
    });
    ws.addEventListener('close', () => {
      document.body.classList.remove('connected');
      setConn(false, 'Not connected to your peer; trying again…');
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    });
  }

  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('message');
    const text = input.value;
    if (!text.trim()) return;
    const to = $('chat-to').value || null;
    if (send({ cmd: 'chat', text, to })) input.value = '';
  });

  $('problem-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const title = $('problem-title').value.trim();
    if (!title) return;
    const msg = { cmd: 'problem', title, body: $('problem-body').value, private_answers: $('problem-private').checked };
    if (send(msg)) {
      $('problem-title').value = '';
      $('problem-body').value = '';
      $('problem-private').checked = false;
      $('new-problem').open = false;
    }
  });

  connect();
})();
