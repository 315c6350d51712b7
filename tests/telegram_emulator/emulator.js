'use strict';
// Telegram Bot API emulator for commops' end-to-end tests.
//
// Built on the npm package `telegram-test-api` 4.2.x (its express server, body parsing, id
// counters, bot-message storage and webhook registry), plus a compatibility layer that makes it
// speak the Bot API the way python-telegram-bot 22 expects. The compat route is inserted *before*
// the package's own routes, so every Bot API method listed in COMPAT below is answered here;
// anything else is a faithful 404 "Not Found" (the package answers HTTP 500).
//
// What the package gets wrong for PTB 22, and the fix here:
//  - getMe lacks is_bot                       -> full User object with is_bot / can_join_groups
//  - message dates in milliseconds            -> seconds
//  - editMessageText / answerCallbackQuery null -> edited Message / true
//  - callback updates lack chat_instance      -> updates are built by the test side, verbatim
//  - getUpdates ignores offset/timeout/allowed_updates -> real long polling with confirmation
//  - webhook delivery without secret token    -> X-Telegram-Bot-Api-Secret-Token header
//  - unknown methods -> HTTP 500              -> HTTP 404 {ok:false,error_code:404}
//  - group messages reported as private       -> chat type from the chat id / known chats
//  - no multipart parsing (sendPhoto)         -> minimal multipart/form-data parser
// Beyond that, behaviour a bot must cope with: HTML parse mode turned into plain text + entities
// (malformed HTML is a 400), length limits, 403 for private chats the user never started, 409 for
// a second poller or getUpdates under a webhook, and injected failures (e.g. 429 retry_after).
//
// Control API for the tests (not part of the Bot API), under /_emulator/:
//   POST /_emulator/updates     {update, secret_token?, omit_secret?}  -> {update_id, delivery}
//   GET  /_emulator/calls        all Bot API calls [{method, params, files, result, ok}]
//   POST /_emulator/admins       {chat_id, admins:[{user, status?}]}
//   POST /_emulator/chats        {chat}  (register a chat's title/type)
//   POST /_emulator/started      {user_id}  (the user opened a private chat with the bot)
//   POST /_emulator/failures     {method, chat_id?, error_code?, description?, retry_after?, times?}
//   GET  /_emulator/state        webhook, pending updates, polls
//
// Usage: node emulator.js --token TOKEN [--port 0] [--bot-username NAME]
// Prints "EMULATOR_LISTENING <port>" on stdout once it accepts connections. Exits when stdin
// closes (so it never outlives the test process) or on SIGTERM/SIGINT.

const http = require('http');
const TelegramServer = require('telegram-test-api');
const { routes } = require('telegram-test-api/lib/routes/index');

function parseArgs(argv) {
  const out = { port: 0, token: null, botUsername: 'commops_test_bot' };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i];
    const val = argv[i + 1];
    if (key === '--port') out.port = Number(val);
    else if (key === '--token') out.token = val;
    else if (key === '--bot-username') out.botUsername = val;
    else throw new Error(`unknown argument ${key}`);
  }
  if (!out.token || !/^\d+:[\w-]+$/.test(out.token)) throw new Error('--token 123:ABC required');
  return out;
}

const args = parseArgs(process.argv);
const BOT_ID = Number(args.token.split(':')[0]);
const BOT_USER = {
  id: BOT_ID,
  is_bot: true,
  first_name: 'Commops Test Bot',
  username: args.botUsername,
};

// Fields that are always strings in the Bot API; everything else PTB JSON-encodes.
const STRING_FIELDS = new Set([
  'text', 'caption', 'question', 'parse_mode', 'callback_query_id', 'url', 'secret_token',
  'language_code', 'inline_message_id', 'explanation', 'question_parse_mode', 'type',
  'business_connection_id', 'message_effect_id', 'ip_address', 'certificate',
]);

const now = () => Math.floor(Date.now() / 1000);

class CompatState {
  constructor(server) {
    this.server = server; // the telegram-test-api TelegramServer
    this.calls = [];
    this.updates = []; // pending (unconfirmed) updates, raw Bot API objects
    this.waiters = [];
    this.terminatePoll = null; // ends the long poll in progress with 409 Conflict
    this.allowedUpdates = null; // null = Telegram's default (no chat_member, reactions)
    this.webhook = null; // {url, secret_token, allowed_updates}
    this.deliveries = [];
    this.admins = {}; // chat_id -> [ChatMember]
    this.chats = {}; // chat_id -> Chat
    this.polls = {}; // poll_id -> {poll, chat_id, message_id}
    this.messages = {}; // `${chat_id}:${message_id}` -> Message
    this.commands = {}; // scope/lang key -> commands
    this.started = new Set(); // users who opened a private chat with the bot
    this.failures = []; // injected errors: {method, chat_id, error_code, description, ...}
  }

  chatFor(chatId) {
    const id = Number(chatId);
    if (this.chats[id]) return this.chats[id];
    if (id > 0) return { id, type: 'private', first_name: `User ${id}` };
    if (String(id).startsWith('-100')) return { id, type: 'supergroup', title: `Group ${id}` };
    return { id, type: 'group', title: `Group ${id}` };
  }

  // Stores the message through the package (for its history / ids), returns a Bot API Message.
  storeBotMessage(params, extra) {
    const stored = this.server.addBotMessage({ ...params }, args.token);
    const msg = {
      message_id: stored.message_id,
      from: BOT_USER,
      chat: this.chatFor(params.chat_id),
      date: now(), // the package uses milliseconds
      ...extra,
    };
    if (params.reply_markup && params.reply_markup.inline_keyboard) {
      msg.reply_markup = { inline_keyboard: params.reply_markup.inline_keyboard };
    }
    if (params.reply_parameters && params.reply_parameters.message_id) {
      const replied = this.messages[`${Number(params.chat_id)}:${params.reply_parameters.message_id}`];
      if (replied) msg.reply_to_message = replied;
    }
    this.messages[`${msg.chat.id}:${msg.message_id}`] = msg;
    return msg;
  }

  // Telegram refuses to open a private chat the user never started.
  checkCanSend(chatId) {
    const id = Number(chatId);
    if (id > 0 && !this.started.has(id)) {
      throw badRequest("Forbidden: bot can't initiate conversation with a user", 403);
    }
  }

  takeFailure(method, params) {
    const i = this.failures.findIndex((f) => f.method.toLowerCase() === method.toLowerCase()
      && (f.chat_id === undefined || f.chat_id === null || String(f.chat_id) === String(params.chat_id)));
    if (i === -1) return null;
    const failure = this.failures[i];
    failure.times -= 1;
    if (failure.times <= 0) this.failures.splice(i, 1);
    return failure;
  }

  updateType(update) {
    return Object.keys(update).find((k) => k !== 'update_id');
  }

  allowed(update, allowedList) {
    const type = this.updateType(update);
    if (allowedList && allowedList.length) return allowedList.includes(type);
    return !['chat_member', 'message_reaction', 'message_reaction_count'].includes(type);
  }

  async addUpdate(body) {
    const update = JSON.parse(JSON.stringify(body.update));
    update.update_id = this.server.updateId;
    this.server.updateId += 1;
    // Remember chats and messages so later bot replies get the right chat type / reply target.
    const msg = update.message || update.edited_message || update.channel_post;
    if (msg && !msg.message_id) {
      msg.message_id = this.server.messageId; // one id sequence per emulator, shared with the bot
      this.server.messageId += 1;
    }
    if (msg && !msg.date) msg.date = now();
    if (msg && msg.chat && msg.chat.type === 'private' && msg.from) this.started.add(msg.from.id);
    if (msg && msg.chat) {
      this.chats[msg.chat.id] = { ...this.chatFor(msg.chat.id), ...msg.chat };
      this.messages[`${msg.chat.id}:${msg.message_id}`] = msg;
    }
    const answer = update.poll_answer;
    if (answer && !answer.option_persistent_ids) {
      const entry = this.polls[answer.poll_id];
      answer.option_persistent_ids = (answer.option_ids || [])
        .map((i) => (entry && entry.poll.options[i] ? entry.poll.options[i].persistent_id : `${i}`));
    }
    const cm = update.chat_member || update.my_chat_member || update.message_reaction;
    if (cm && cm.chat) this.chats[cm.chat.id] = { ...this.chatFor(cm.chat.id), ...cm.chat };

    if (this.webhook) {
      const filter = this.webhook.allowed_updates || null;
      if (!this.allowed(update, filter)) return { update_id: update.update_id, delivery: null };
      const delivery = await this.deliver(update, body);
      return { update_id: update.update_id, delivery };
    }
    this.updates.push(update);
    this.wake();
    return { update_id: update.update_id, delivery: null };
  }

  async deliver(update, body) {
    const headers = { 'Content-Type': 'application/json' };
    let secret = this.webhook.secret_token;
    if (body.secret_token !== undefined && body.secret_token !== null) secret = body.secret_token;
    if (secret && !body.omit_secret) headers['X-Telegram-Bot-Api-Secret-Token'] = secret;
    const record = { update_id: update.update_id, url: this.webhook.url, status: null, error: null };
    try {
      const resp = await fetch(this.webhook.url, {
        method: 'POST', headers, body: JSON.stringify(update), signal: AbortSignal.timeout(10000),
      });
      record.status = resp.status;
      record.body = await resp.text();
    } catch (err) {
      record.error = String(err && err.cause ? err.cause : err);
    }
    this.deliveries.push(record);
    return record;
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }

  takeUpdates(offset, limit, allowedList) {
    if (offset !== undefined && offset !== null) {
      if (offset < 0) this.updates = this.updates.slice(offset); // last -offset updates
      else this.updates = this.updates.filter((u) => u.update_id >= offset); // confirm
    }
    // Updates of types the bot did not ask for are never delivered (Telegram drops them).
    this.updates = this.updates.filter((u) => this.allowed(u, allowedList));
    return this.updates.slice(0, limit);
  }
}

function badRequest(description, code = 400) {
  const err = new Error(description);
  err.http = code;
  return err;
}

function requireParam(params, name) {
  if (params[name] === undefined || params[name] === null || params[name] === '') {
    throw badRequest(`Bad Request: ${name} is empty`);
  }
  return params[name];
}

const COMPAT = {
  getMe: () => ({
    ...BOT_USER,
    can_join_groups: true,
    can_read_all_group_messages: true,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
  }),
  logOut: () => true,
  close: () => true,

  getUpdates: async (state, params, req, files, res) => {
    if (state.webhook) {
      throw badRequest("Conflict: can't use getUpdates method while webhook is active;"
        + ' use deleteWebhook to delete the webhook first', 409);
    }
    if (params.allowed_updates !== undefined) {
      state.allowedUpdates = params.allowed_updates.length ? params.allowed_updates : null;
    }
    // Like Telegram, a new getUpdates ends a long poll still waiting with 409 (two instances).
    if (state.terminatePoll) state.terminatePoll();
    const limit = Math.min(Math.max(Number(params.limit || 100), 1), 100);
    const timeout = Math.max(Number(params.timeout || 0), 0);
    const offset = params.offset === undefined ? undefined : Number(params.offset);
    let result = state.takeUpdates(offset, limit, state.allowedUpdates);
    if (result.length || timeout === 0) return result;
    // Long poll: wait for an update, the timeout, or the client going away.
    let terminated = false;
    await new Promise((resolve) => {
      const timer = setTimeout(done, timeout * 1000);
      function terminate() {
        terminated = true;
        done();
      }
      function done() {
        clearTimeout(timer);
        state.waiters = state.waiters.filter((w) => w !== done);
        if (state.terminatePoll === terminate) state.terminatePoll = null;
        resolve();
      }
      state.waiters.push(done);
      state.terminatePoll = terminate;
      res.on('close', done); // the client went away (req 'close' fires once the body is read)
    });
    if (terminated) {
      throw badRequest('Conflict: terminated by other getUpdates request; make sure that only one'
        + ' bot instance is running', 409);
    }
    result = state.takeUpdates(undefined, limit, state.allowedUpdates);
    return result;
  },

  setWebhook: (state, params) => {
    const url = requireParam(params, 'url');
    state.webhook = {
      url, secret_token: params.secret_token || null, allowed_updates: params.allowed_updates || null,
    };
    if (params.drop_pending_updates) state.updates = [];
    state.server.setWebhook({ url }, args.token);
    return true;
  },
  deleteWebhook: (state, params) => {
    state.webhook = null;
    if (params.drop_pending_updates) state.updates = [];
    state.server.deleteWebhook(args.token);
    return true;
  },
  getWebhookInfo: (state) => ({
    url: state.webhook ? state.webhook.url : '',
    has_custom_certificate: false,
    pending_update_count: state.webhook ? 0 : state.updates.length,
    ...(state.webhook && state.webhook.allowed_updates
      ? { allowed_updates: state.webhook.allowed_updates } : {}),
  }),

  sendMessage: (state, params) => {
    state.checkCanSend(requireParam(params, 'chat_id'));
    const { text, entities } = formatted(requireParam(params, 'text'), params);
    if (!text.trim()) throw badRequest('Bad Request: message text is empty');
    if (text.length > 4096) throw badRequest('Bad Request: message is too long');
    return state.storeBotMessage(params, entities.length ? { text, entities } : { text });
  },
  sendPhoto: (state, params, req, files) => {
    state.checkCanSend(requireParam(params, 'chat_id'));
    const file = files.photo;
    if (!file && !params.photo) throw badRequest('Bad Request: there is no photo in the request');
    const size = file ? file.data.length : 0;
    const dims = file ? pngSize(file.data) : null;
    const uid = `photo${state.server.messageId}`;
    const photo = [{
      file_id: `AgAC-${uid}`,
      file_unique_id: uid,
      width: dims ? dims.width : 0,
      height: dims ? dims.height : 0,
      file_size: size,
    }];
    const extra = { photo };
    if (params.caption) {
      const { text, entities } = formatted(params.caption, params);
      if (text.length > 1024) throw badRequest('Bad Request: message caption is too long');
      extra.caption = text;
      if (entities.length) extra.caption_entities = entities;
    }
    return state.storeBotMessage(params, extra);
  },
  sendPoll: (state, params) => {
    state.checkCanSend(requireParam(params, 'chat_id'));
    const question = requireParam(params, 'question');
    const pollId = String(5000000000000000000n + BigInt(state.server.messageId));
    const options = (params.options || []).map((o, i) => ({
      text: typeof o === 'string' ? o : o.text, voter_count: 0, persistent_id: `${pollId}-${i}`,
    }));
    if (options.length < 2) throw badRequest('Bad Request: poll must have at least 2 option');
    const poll = {
      id: pollId,
      question,
      options,
      total_voter_count: 0,
      is_closed: false,
      is_anonymous: params.is_anonymous === undefined ? true : Boolean(params.is_anonymous),
      type: params.type || 'regular',
      allows_multiple_answers: Boolean(params.allows_multiple_answers),
      allows_revoting: true, // Bot API 9.6+ fields PTB 22.8 requires
      members_only: false,
    };
    const msg = state.storeBotMessage(params, { poll });
    state.polls[pollId] = { poll, chat_id: msg.chat.id, message_id: msg.message_id };
    return msg;
  },
  stopPoll: (state, params) => {
    const chatId = Number(requireParam(params, 'chat_id'));
    const messageId = Number(requireParam(params, 'message_id'));
    const entry = Object.values(state.polls)
      .find((p) => p.chat_id === chatId && p.message_id === messageId);
    if (!entry) throw badRequest('Bad Request: message with poll to stop not found');
    if (entry.poll.is_closed) throw badRequest('Bad Request: poll has already been closed');
    entry.poll.is_closed = true;
    return entry.poll;
  },
  editMessageText: (state, params) => {
    const { text, entities } = formatted(requireParam(params, 'text'), params);
    if (params.inline_message_id) return true;
    const key = `${Number(params.chat_id)}:${Number(params.message_id)}`;
    const msg = state.messages[key];
    if (!msg || msg.from.id !== BOT_ID) throw badRequest('Bad Request: message to edit not found');
    const same = msg.text === text
      && JSON.stringify(msg.entities || []) === JSON.stringify(entities)
      && JSON.stringify(msg.reply_markup) === JSON.stringify(params.reply_markup);
    if (same) {
      throw badRequest('Bad Request: message is not modified: specified new message content and'
        + ' reply markup are exactly the same as a current content and reply markup of the message');
    }
    state.server.editMessageText({ ...params }); // keep the package's history in step
    const edited = { ...msg, text, edit_date: now() };
    if (entities.length) edited.entities = entities;
    else delete edited.entities;
    if (params.reply_markup && params.reply_markup.inline_keyboard) {
      edited.reply_markup = params.reply_markup;
    } else delete edited.reply_markup;
    state.messages[key] = edited;
    return edited;
  },
  editMessageReplyMarkup: (state, params) => {
    if (params.inline_message_id) return true;
    const key = `${Number(params.chat_id)}:${Number(params.message_id)}`;
    const msg = state.messages[key];
    if (!msg || msg.from.id !== BOT_ID) throw badRequest('Bad Request: message to edit not found');
    state.server.editMessageReplyMarkup({ ...params });
    const edited = { ...msg, edit_date: now() };
    if (params.reply_markup && params.reply_markup.inline_keyboard) {
      edited.reply_markup = params.reply_markup;
    } else delete edited.reply_markup;
    state.messages[key] = edited;
    return edited;
  },
  deleteMessage: (state, params) => {
    const key = `${Number(params.chat_id)}:${Number(params.message_id)}`;
    if (!state.messages[key]) throw badRequest('Bad Request: message to delete not found');
    delete state.messages[key];
    state.server.deleteMessage(Number(params.chat_id), Number(params.message_id));
    return true;
  },
  answerCallbackQuery: (state, params) => {
    requireParam(params, 'callback_query_id');
    return true;
  },
  sendChatAction: () => true,
  setMessageReaction: () => true,
  leaveChat: () => true,

  getChat: (state, params) => ({
    ...state.chatFor(requireParam(params, 'chat_id')),
    accent_color_id: 0,
    max_reaction_count: 11,
    accepted_gift_types: {
      unlimited_gifts: false, limited_gifts: false, unique_gifts: false, premium_subscription: false,
    },
  }),
  getChatAdministrators: (state, params) => {
    const chatId = Number(requireParam(params, 'chat_id'));
    if (chatId > 0) throw badRequest('Bad Request: there are no administrators in the private chat');
    return state.admins[chatId] || [];
  },
  getChatMember: (state, params) => {
    const chatId = Number(requireParam(params, 'chat_id'));
    const userId = Number(requireParam(params, 'user_id'));
    const admin = (state.admins[chatId] || []).find((m) => m.user.id === userId);
    if (admin) return admin;
    return { status: 'member', user: { id: userId, is_bot: false, first_name: `User ${userId}` } };
  },
  getChatMemberCount: () => 2,

  setMyCommands: (state, params) => {
    const commands = params.commands || [];
    if (commands.length > 100) throw badRequest('Bad Request: too many commands');
    commands.forEach((c) => {
      if (!/^[a-z0-9_]{1,32}$/.test(c.command || '')) {
        throw badRequest('Bad Request: BOT_COMMAND_INVALID');
      }
      if (!c.description || c.description.length > 256) {
        throw badRequest('Bad Request: BOT_COMMAND_DESCRIPTION_INVALID');
      }
    });
    const key = JSON.stringify([params.scope || { type: 'default' }, params.language_code || '']);
    state.commands[key] = params.commands || [];
    return true;
  },
  getMyCommands: (state, params) => {
    const key = JSON.stringify([params.scope || { type: 'default' }, params.language_code || '']);
    return state.commands[key] || [];
  },
  deleteMyCommands: (state, params) => {
    const key = JSON.stringify([params.scope || { type: 'default' }, params.language_code || '']);
    delete state.commands[key];
    return true;
  },
};

function adminMember(user, status) {
  if (status === 'creator') return { status: 'creator', user, is_anonymous: false };
  return {
    status: 'administrator',
    user,
    can_be_edited: false,
    is_anonymous: false,
    can_manage_chat: true,
    can_delete_messages: true,
    can_manage_video_chats: true,
    can_restrict_members: true,
    can_promote_members: false,
    can_change_info: true,
    can_invite_users: true,
    can_post_stories: false,
    can_edit_stories: false,
    can_delete_stories: false,
    can_pin_messages: true,
  };
}

// HTML parse mode as Telegram implements it: supported tags become entities, the returned text is
// plain; a stray "<" or an unsupported/unbalanced tag is a 400, like the real API.
const HTML_TAGS = {
  b: 'bold', strong: 'bold', i: 'italic', em: 'italic', u: 'underline', ins: 'underline',
  s: 'strikethrough', strike: 'strikethrough', del: 'strikethrough', 'tg-spoiler': 'spoiler',
  span: 'spoiler', a: 'text_link', code: 'code', pre: 'pre', blockquote: 'blockquote',
  'tg-emoji': 'custom_emoji',
};
const HTML_ENTITIES = { lt: '<', gt: '>', amp: '&', quot: '"' };

function decodeEntity(src, i) {
  const m = /^&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);/.exec(src.slice(i, i + 12));
  if (!m) return null;
  const body = m[1];
  let ch = null;
  if (body.startsWith('#x')) ch = String.fromCodePoint(parseInt(body.slice(2), 16));
  else if (body.startsWith('#')) ch = String.fromCodePoint(Number(body.slice(1)));
  else ch = HTML_ENTITIES[body.toLowerCase()] || null;
  return ch === null ? null : { ch, len: m[0].length };
}

function unescapeHtml(s) {
  let out = '';
  for (let i = 0; i < s.length;) {
    const e = s[i] === '&' ? decodeEntity(s, i) : null;
    if (e) { out += e.ch; i += e.len; } else { out += s[i]; i += 1; }
  }
  return out;
}

function parseHtml(src) {
  const fail = (why) => badRequest(`Bad Request: can't parse entities: ${why}`);
  let out = '';
  const stack = [];
  const entities = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (ch === '<') {
      const end = src.indexOf('>', i);
      if (end === -1) throw fail(`Unclosed start tag at byte offset ${i}`);
      const raw = src.slice(i + 1, end);
      if (raw.startsWith('/')) {
        const name = raw.slice(1).trim().toLowerCase();
        const top = stack.pop();
        if (!top || top.name !== name) {
          throw fail(`Unmatched end tag at byte offset ${i}, expected "</${top ? top.name : ''}>",`
            + ` found "</${name}>"`);
        }
        if (out.length > top.offset) {
          entities.push({ type: top.type, offset: top.offset, length: out.length - top.offset, ...top.extra });
        }
      } else {
        const m = /^([a-zA-Z][\w-]*)(\s[\s\S]*)?$/.exec(raw);
        const name = m ? m[1].toLowerCase() : raw;
        if (!m || !(name in HTML_TAGS)) throw fail(`Unsupported start tag "${name}" at byte offset ${i}`);
        const attrs = m[2] || '';
        const extra = {};
        if (name === 'a') {
          const h = /href\s*=\s*(?:"([^"]*)"|'([^']*)')/.exec(attrs);
          if (h) extra.url = unescapeHtml(h[1] !== undefined ? h[1] : h[2]);
        }
        if (name === 'span' && !/class\s*=\s*["']tg-spoiler["']/.test(attrs)) {
          throw fail(`Tag "span" must have class "tg-spoiler" at byte offset ${i}`);
        }
        stack.push({ name, type: HTML_TAGS[name], offset: out.length, extra });
      }
      i = end + 1;
    } else if (ch === '&') {
      const e = decodeEntity(src, i);
      if (e) { out += e.ch; i += e.len; } else { out += ch; i += 1; }
    } else {
      out += ch;
      i += 1;
    }
  }
  if (stack.length) {
    throw fail(`Can't find end tag corresponding to start tag "${stack[stack.length - 1].name}"`);
  }
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text: out, entities: entities.filter((e) => e.type !== 'text_link' || e.url) };
}

// Text as Telegram stores it: HTML parsed; other parse modes passed through (not emulated).
function formatted(raw, params) {
  if (String(params.parse_mode || '').toLowerCase() === 'html') return parseHtml(String(raw));
  return { text: String(raw), entities: [] };
}

function pngSize(buf) {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (buf.length < 24 || !sig.every((b, i) => buf[i] === b)) return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// Minimal multipart/form-data parser (PTB uploads files this way; express does not parse it).
function parseMultipart(buf, contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!m) throw badRequest('Bad Request: multipart boundary missing');
  const boundary = Buffer.from(`--${m[1] || m[2]}`);
  const fields = {};
  const files = {};
  let pos = buf.indexOf(boundary);
  while (pos !== -1) {
    const start = pos + boundary.length;
    if (buf.slice(start, start + 2).toString() === '--') break;
    const next = buf.indexOf(boundary, start);
    if (next === -1) break;
    const part = buf.slice(start + 2, next - 2); // skip CRLF after boundary and before next
    const sep = part.indexOf('\r\n\r\n');
    const head = part.slice(0, sep).toString('utf8');
    const data = part.slice(sep + 4);
    const name = /name="([^"]*)"/i.exec(head);
    const filename = /filename="([^"]*)"/i.exec(head);
    const ctype = /content-type:\s*([^\r\n]+)/i.exec(head);
    if (name) {
      if (filename) {
        files[name[1]] = { filename: filename[1], content_type: ctype ? ctype[1] : null, data };
      } else fields[name[1]] = data.toString('utf8');
    }
    pos = next;
  }
  return { fields, files };
}

function decodeParams(raw) {
  const out = {};
  Object.entries(raw || {}).forEach(([k, v]) => {
    if (typeof v !== 'string' || STRING_FIELDS.has(k)) {
      out[k] = v;
      return;
    }
    try {
      out[k] = JSON.parse(v);
    } catch (_e) {
      out[k] = v;
    }
  });
  return out;
}

function sendJson(res, status, body) {
  res.status(status).type('application/json').send(JSON.stringify(body));
}

function compatRoute(app, telegramServer) {
  const state = new CompatState(telegramServer);

  app.post('/_emulator/updates', async (req, res) => {
    try {
      sendJson(res, 200, await state.addUpdate(req.body));
    } catch (err) {
      sendJson(res, 500, { error: String(err) });
    }
  });
  app.get('/_emulator/calls', (_req, res) => sendJson(res, 200, state.calls));
  app.get('/_emulator/state', (_req, res) => sendJson(res, 200, {
    webhook: state.webhook,
    pending_updates: state.updates,
    allowed_updates: state.allowedUpdates,
    deliveries: state.deliveries,
    polls: state.polls,
    commands: state.commands,
    history: telegramServer.getUpdatesHistory(args.token).length,
  }));
  app.post('/_emulator/admins', (req, res) => {
    const chatId = Number(req.body.chat_id);
    state.admins[chatId] = (req.body.admins || []).map((a) => adminMember(a.user, a.status));
    sendJson(res, 200, { ok: true });
  });
  app.post('/_emulator/started', (req, res) => {
    state.started.add(Number(req.body.user_id));
    sendJson(res, 200, { ok: true });
  });
  app.post('/_emulator/failures', (req, res) => {
    state.failures.push({ times: 1, ...req.body });
    sendJson(res, 200, { ok: true });
  });
  app.post('/_emulator/chats', (req, res) => {
    const { chat } = req.body;
    state.chats[Number(chat.id)] = chat;
    sendJson(res, 200, { ok: true });
  });

  app.all('/bot:token/:method', async (req, res) => {
    if (req.params.token !== args.token) {
      sendJson(res, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
      return;
    }
    // Bot API method names are case-insensitive.
    const name = Object.keys(COMPAT).find((k) => k.toLowerCase() === req.params.method.toLowerCase());
    if (!name) {
      state.calls.push({ method: req.params.method, params: {}, files: {}, ok: false, result: null });
      sendJson(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    let raw = { ...req.query, ...(req.body || {}) };
    let files = {};
    const ctype = req.headers['content-type'] || '';
    try {
      if (ctype.startsWith('multipart/form-data')) {
        const parsed = parseMultipart(await readBody(req), ctype);
        raw = { ...req.query, ...parsed.fields };
        files = parsed.files;
      }
      const params = decodeParams(raw);
      const failure = state.takeFailure(name, params);
      if (failure) {
        const code = failure.error_code || 429;
        const body = {
          ok: false,
          error_code: code,
          description: failure.description
            || (code === 429 ? `Too Many Requests: retry after ${failure.retry_after || 1}` : 'Error'),
        };
        if (code === 429) body.parameters = { retry_after: failure.retry_after || 1 };
        state.calls.push({ method: name, params, files: {}, ok: false, error: body.description });
        sendJson(res, code, body);
        return;
      }
      const result = await COMPAT[name](state, params, req, files, res);
      const fileInfo = {};
      Object.entries(files).forEach(([k, f]) => {
        fileInfo[k] = { filename: f.filename, content_type: f.content_type, size: f.data.length };
      });
      state.calls.push({ method: name, params, files: fileInfo, ok: true, result });
      if (!res.headersSent && !res.destroyed) sendJson(res, 200, { ok: true, result });
    } catch (err) {
      const code = err.http || 500;
      state.calls.push({ method: name, params: raw, files: {}, ok: false, error: err.message });
      if (!res.headersSent) {
        sendJson(res, code, { ok: false, error_code: code, description: err.message });
      }
    }
  });
}

async function main() {
  // Our route goes first, ahead of the package's client and bot routes.
  routes.unshift(compatRoute);
  const telegramServer = new TelegramServer({ port: 1, host: '127.0.0.1' });
  // The package's start() treats port 0 as "use 9000"; listen ourselves for a free port.
  const server = http.createServer(telegramServer.webServer);
  server.keepAliveTimeout = 65000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(args.port, '127.0.0.1', resolve);
  });
  process.stdout.write(`EMULATOR_LISTENING ${server.address().port}\n`);
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

main().catch((err) => {
  process.stderr.write(`emulator failed to start: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
