// The back-room page (`/stock`): receiving deliveries and transfers, write-offs,
// transfers to another store, stock counts, and stock on hand with the recent
// movements. Plain JS, no build step, embedded in the agent binary like the cashier
// page (app.js), whose session it shares (`sessionStorage["kassa.token"]`) and whose
// language it follows (`localStorage["kassa.lang"]`). It reads the back room's API
// (agent/src/api/stock.rs); every write carries an idempotency key made for that action
// and sent again only when the same action is retried after the network failed. Server
// text is only ever written as text.
"use strict";

const $ = (id) => document.getElementById(id);

// ---- words ----
const WORDS = {
  ru: {
    title: "Склад", tab_inbound: "Ожидается", tab_writeoff: "Списание", tab_transfer: "Перемещение",
    tab_count: "Инвентаризация", tab_stock: "Остатки", to_till: "Касса", logout: "Выход",
    inbound_title: "Ожидается", inbound_none: "Ничего не ожидается.", no_doc: "Приёмка без документа",
    refresh: "Обновить", choose_doc: "Выберите поставку слева", code: "Штрихкод или артикул — Enter",
    code_ph: "Штрихкод, артикул или название", qty: "Кол-во", qty_signed: "Кол-во (−1 — отменить)", add: "Добавить",
    item: "Товар", expected: "Ожидается", received: "Принято", difference: "Разница", note: "Комментарий",
    accept: "Принять", writeoff_title: "Списание", reason: "Причина", reason_damaged: "Бой, порча",
    reason_expired: "Истёк срок годности", reason_theft: "Кража", reason_other: "Другое", write_off: "Списать",
    transfer_title: "Перемещение в другой магазин", to_store: "Магазин-получатель, №", ship: "Отправить",
    counts_open: "Открытые инвентаризации", counts_none: "Открытых нет.", count_new: "Новая инвентаризация",
    categories: "Категории через запятую", categories_ph: "Молочные продукты, Напитки",
    start_categories: "Начать: эти категории", start_all: "Начать: весь магазин",
    choose_count: "Выберите или начните инвентаризацию", book: "Учёт", counted: "Посчитано", post_count: "Провести",
    on_hand: "Остатки в магазине", search: "Поиск: артикул или название", on_hand_short: "Остаток",
    movements: "Последние движения", when: "Когда", what: "Что", lines: "Товары",
    login_title: "Вход на склад", user_id: "Логин", pin: "PIN", login: "Войти", ok: "OK", cancel: "Отмена",
    manager: "Управляющий (логин)", manager_pin: "PIN управляющего",
    approve_receive: "Приёмка без документа: нужно разрешение управляющего",
    approve_writeoff: "Списание: нужно разрешение управляющего",
    approve_count: "Провести инвентаризацию №{n}: нужно разрешение управляющего",
    confirm_count: "Провести инвентаризацию №{n}?",
    confirm_all: "Инвентаризация всего магазина: всё, что не посчитают, при проведении будет учтено как отсутствующее. Начать?",
    delivery: "Поставка №{n}", transfer_from: "Перемещение из магазина {s} (№{n})",
    no_doc_title: "Приёмка без документа", lines_n: "позиций: {n}", short: "недостача", over: "излишек",
    not_expected: "не ожидался", unchecked: "проверится при записи",
    summary: "Недостача: {s} · излишек: {o} · совпало: {k}",
    received_done: "Принято: {doc}, документ №{seq}.", no_differences: "Без расхождений.",
    differences_n: "Расхождений: {n}.", written_off: "Списано ({r}), документ №{seq}.",
    approved_by: "Разрешил: {m}", shipped: "Отправлено в магазин {s}, документ №{seq}.",
    count_title: "Инвентаризация №{n}", count_scope_all: "весь магазин", count_by: "начал {u}, {d}",
    uncounted_n: "Не посчитано: {n} — при проведении будут учтены как отсутствующие",
    count_posted_done: "Инвентаризация №{n} проведена, документ №{seq}. Исправлено позиций: {k}.",
    count_started: "Инвентаризация №{n} начата.", count_is_posted: "проведена, документ №{seq}",
    shown: "Показано {n} из {m}", mv_receipt: "Приёмка", mv_transfer_in: "Приём перемещения",
    mv_transfer_out: "Перемещение", mv_write_off_damaged: "Списание: бой, порча",
    mv_write_off_expired: "Списание: истёк срок", mv_write_off_theft: "Списание: кража",
    mv_write_off_other: "Списание: другое", mv_count: "Инвентаризация", doc_delivery: "поставка №{n}",
    doc_transfer: "из магазина {s}", doc_count: "инвентаризация №{n}", doc_to: "в магазин {s}", doc_none: "без документа",
    remove: "Убрать строку", less: "На одну меньше", more_lines: "… ещё {n}", store: "Магазин №{n}",
    attempts_left: "Осталось попыток: {n}.", retry: "Повторите то же действие: дважды оно не запишется.",
    nothing_found: "Ничего не найдено.",
  },
  en: {
    title: "Back room", tab_inbound: "Expected", tab_writeoff: "Write-off", tab_transfer: "Transfer",
    tab_count: "Stock count", tab_stock: "Stock", to_till: "Till", logout: "Log out",
    inbound_title: "Expected", inbound_none: "Nothing expected.", no_doc: "Receive without a document",
    refresh: "Refresh", choose_doc: "Choose a delivery on the left", code: "Barcode or SKU — Enter",
    code_ph: "Barcode, SKU or name", qty: "Qty", qty_signed: "Qty (−1 takes back)", add: "Add",
    item: "Item", expected: "Expected", received: "Received", difference: "Difference", note: "Note",
    accept: "Accept", writeoff_title: "Write-off", reason: "Reason", reason_damaged: "Damaged",
    reason_expired: "Expired", reason_theft: "Theft", reason_other: "Other", write_off: "Write off",
    transfer_title: "Transfer to another store", to_store: "Receiving store no.", ship: "Ship",
    counts_open: "Open counts", counts_none: "None open.", count_new: "New count",
    categories: "Categories, comma-separated", categories_ph: "Молочные продукты, Напитки",
    start_categories: "Start: these categories", start_all: "Start: the whole store",
    choose_count: "Choose or start a count", book: "Book", counted: "Counted", post_count: "Post",
    on_hand: "Stock on hand", search: "Search: SKU or name", on_hand_short: "On hand",
    movements: "Recent movements", when: "When", what: "What", lines: "Items",
    login_title: "Back room login", user_id: "Login", pin: "PIN", login: "Log in", ok: "OK", cancel: "Cancel",
    manager: "Manager (login)", manager_pin: "Manager's PIN",
    approve_receive: "Receiving without a document: a manager must approve",
    approve_writeoff: "Write-off: a manager must approve",
    approve_count: "Post stock count no. {n}: a manager must approve",
    confirm_count: "Post stock count no. {n}?",
    confirm_all: "A count of the whole store: whatever nobody counts is taken as none when it is posted. Start?",
    delivery: "Delivery no. {n}", transfer_from: "Transfer from store {s} (no. {n})",
    no_doc_title: "Receiving without a document", lines_n: "{n} lines", short: "short", over: "over",
    not_expected: "not expected", unchecked: "checked when recorded",
    summary: "Short: {s} · over: {o} · matching: {k}",
    received_done: "Received: {doc}, document no. {seq}.", no_differences: "No differences.",
    differences_n: "Differences: {n}.", written_off: "Written off ({r}), document no. {seq}.",
    approved_by: "Approved by: {m}", shipped: "Shipped to store {s}, document no. {seq}.",
    count_title: "Stock count no. {n}", count_scope_all: "whole store", count_by: "started by {u}, {d}",
    uncounted_n: "Not counted: {n} — posting takes them as none",
    count_posted_done: "Stock count no. {n} posted, document no. {seq}. Lines adjusted: {k}.",
    count_started: "Stock count no. {n} started.", count_is_posted: "posted, document no. {seq}",
    shown: "Showing {n} of {m}", mv_receipt: "Receipt", mv_transfer_in: "Transfer in",
    mv_transfer_out: "Transfer out", mv_write_off_damaged: "Write-off: damaged",
    mv_write_off_expired: "Write-off: expired", mv_write_off_theft: "Write-off: theft",
    mv_write_off_other: "Write-off: other", mv_count: "Stock count", doc_delivery: "delivery no. {n}",
    doc_transfer: "from store {s}", doc_count: "count no. {n}", doc_to: "to store {s}", doc_none: "no document",
    remove: "Remove line", less: "One less", more_lines: "… {n} more", store: "Store no. {n}",
    attempts_left: "Attempts left: {n}.", retry: "Repeat the same action: it is not recorded twice.",
    nothing_found: "Nothing found.",
  },
};

// What staff read for each refusal the back room's API can send, and what to do next;
// the words are the cashier page's (app.js), plus this page's own (`network`,
// `bad_quantity`, `bad_store`). agent/tests/refusal_codes.rs checks that every code of
// the stock routes has words here in both languages.
const ERRORS = {
  ru: {
    // Codes typed or scanned.
    unknown_sku: "Нет такого артикула: проверьте его или найдите товар по названию.",
    // Logging in and approvals.
    not_logged_in: "Войдите на кассу.",
    no_such_user: "Нет такого пользователя.",
    wrong_pin: "Неверный PIN. Попробуйте ещё раз.",
    locked: "Слишком много неверных PIN. Вход заблокирован на несколько минут.",
    needs_manager: "Нужно разрешение управляющего: введите его PIN.",
    bad_user_id: "Логин — от 1 до 32 латинских букв, цифр, «-» или «_».",
    // Stock: receiving, counts, write-offs, transfers.
    no_such_inbound: "Такой поставки или перемещения нет: обновите список ожидаемых.",
    already_received: "Эта поставка уже принята.",
    no_such_count: "Такой инвентаризации нет: обновите список.",
    count_posted: "Эта инвентаризация уже проведена: начните новую.",
    movement_empty: "Добавьте товары и количество.",
    movement_too_many_lines: "Слишком много строк в одном документе: разделите его на несколько.",
    movement_duplicate_sku: "Товар указан дважды: укажите каждый один раз.",
    movement_quantity: "Количество должно быть больше нуля и не больше 1 000 000.",
    movement_direction: "Это количество не подходит для этой операции: проверьте знак.",
    movement_note: "Комментарий — не больше 200 символов.",
    transfer_to_self: "Перемещение — в другой магазин: проверьте номер магазина.",
    too_many_counts: "Открыто слишком много инвентаризаций: проведите одну из них.",
    count_out_of_scope: "Этот товар не входит в эту инвентаризацию.",
    bad_count_scope: "Инвентаризация — по категориям или по списку товаров, не по обоим сразу.",
    overflow: "Слишком большая сумма: проверьте количество и цену.",
    // Requests and the till server.
    key_reuse: "Повторите операцию.",
    idempotency_key: "Ошибка запроса. Обновите страницу.",
    content_type: "Ошибка запроса. Обновите страницу.",
    bad_request: "Ошибка запроса. Обновите страницу.",
    too_large: "Слишком большой запрос.",
    not_found: "Нет такой функции. Обновите страницу.",
    method_not_allowed: "Нет такой функции. Обновите страницу.",
    disk_full: "Диск кассового сервера заполнен: операция не записана. Позовите администратора.",
    internal: "Внутренняя ошибка. Позовите администратора.",
    // The page's own.
    network: "Нет связи с кассовым сервером. Проверьте, что он запущен.",
    bad_quantity: "Количество — целое число: штуки или граммы.",
    bad_store: "Номер магазина — целое число больше нуля.",
  },
  en: {
    // Codes typed or scanned.
    unknown_sku: "No such SKU: check it or find the item by name.",
    // Logging in and approvals.
    not_logged_in: "Log in first.",
    no_such_user: "No such user.",
    wrong_pin: "Wrong PIN. Try again.",
    locked: "Too many wrong PINs. Login is locked for a few minutes.",
    needs_manager: "A manager must approve: enter their PIN.",
    bad_user_id: "A login is 1 to 32 Latin letters, digits, '-' or '_'.",
    // Stock: receiving, counts, write-offs, transfers.
    no_such_inbound: "No such delivery or transfer: refresh the list of what is expected.",
    already_received: "This delivery was already received.",
    no_such_count: "No such stock count: refresh the list.",
    count_posted: "This stock count was already posted: start a new one.",
    movement_empty: "Add items and quantities.",
    movement_too_many_lines: "Too many lines in one document: split it.",
    movement_duplicate_sku: "An item is listed twice: list each once.",
    movement_quantity: "A quantity is above zero and at most 1,000,000.",
    movement_direction: "That quantity does not fit this operation: check its sign.",
    movement_note: "A note is at most 200 characters.",
    transfer_to_self: "A transfer goes to another store: check the store number.",
    too_many_counts: "Too many stock counts are open: post one of them first.",
    count_out_of_scope: "This item is not among what this count covers.",
    bad_count_scope: "A count covers some categories or a list of items, not both.",
    overflow: "The amount is too large: check the quantity and the price.",
    // Requests and the till server.
    key_reuse: "Repeat the operation.",
    idempotency_key: "Request error. Reload the page.",
    content_type: "Request error. Reload the page.",
    bad_request: "Request error. Reload the page.",
    too_large: "The request is too large.",
    not_found: "No such function. Reload the page.",
    method_not_allowed: "No such function. Reload the page.",
    disk_full: "The till server's disk is full: nothing was recorded. Call the administrator.",
    internal: "Internal error. Call the administrator.",
    // The page's own.
    network: "No connection to the till server. Check that it is running.",
    bad_quantity: "A quantity is a whole number: pieces or grams.",
    bad_store: "A store number is a whole number above zero.",
  },
};

let lang = localStorage.getItem("kassa.lang") === "en" ? "en" : "ru";
const t = (k, vars) => {
  let s = (WORDS[lang] && WORDS[lang][k]) || WORDS.ru[k] || k;
  for (const [name, v] of Object.entries(vars || {})) s = s.split(`{${name}}`).join(String(v));
  return s;
};

// ---- small helpers ----
// An element with text (never markup) and a class.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function td(text, cls) {
  return el("td", text, cls);
}
// An item's cell: its name, and its SKU (or the code as typed) under it.
function itemCell(name, sku, extra) {
  const cell = td(name || sku, "name");
  if (name && sku) cell.appendChild(el("span", sku, "sku"));
  for (const x of extra || []) cell.appendChild(el("span", x, "sku"));
  return cell;
}
const MINUS = "\u2212";
const signed = (n) => (n > 0 ? `+${n}` : n < 0 ? `${MINUS}${-n}` : "0");
const when = (ms) =>
  new Date(ms).toLocaleString(lang === "ru" ? "ru-RU" : "en-GB", { dateStyle: "short", timeStyle: "short" });
// An idempotency key. `crypto.randomUUID` exists only on https or localhost; a tablet on
// the store's network reaches the agent over plain http.
function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
// A quantity as typed: a whole number, not zero; negative only where it takes back.
function readQty(text, allowNegative) {
  const s = String(text).trim().replace(MINUS, "-").replace(/\s/g, "");
  if (!/^-?\d{1,7}$/.test(s)) return null;
  const n = Number(s);
  if (n === 0 || (n < 0 && !allowNegative)) return null;
  return n;
}
// A barcode's digits without leading zeros (EAN-13 and GTIN-14 of one item compare equal).
const gtinKey = (code) => (/^(\d{8}|\d{12,14})$/.test(code) ? code.replace(/^0+/, "") : null);

// ---- state ----
const state = {
  token: sessionStorage.getItem("kassa.token"),
  user: null,
  store: null,
  managers: [],
  tab: "inbound",
  names: new Map(), // SKU → name, from the stock list and searches
  gtins: new Map(), // barcode (gtinKey) → SKU, learned from catalog searches
  searched: new Set(), // SKUs whose barcode was looked up
  inbound: [],
  receiving: null, // { source: "delivery:31" | null, doc: {...} | null, lines: Map }
  writeoff: new Map(),
  transfer: new Map(),
  counts: [],
  count: null, // the chosen count's report
  stock: [],
  moves: [],
  results: { receive: null, writeoff: null, transfer: null, count: null },
  msg: null,
  ready: false, // logged in, with the session checked
};

// ---- messages ----
function errorWords(code, message) {
  let text = (ERRORS[lang] && ERRORS[lang][code]) || message || code;
  const left = code === "wrong_pin" && /(\d+) attempt/.exec(message || "");
  if (left) text += ` ${t("attempts_left", { n: left[1] })}`;
  if (code === "network") text += ` ${t("retry")}`;
  return text;
}
function renderMessage() {
  const m = $("message");
  const msg = state.msg;
  m.textContent = !msg ? "" : msg.code ? errorWords(msg.code, msg.message) : t(msg.key, msg.vars);
  m.className = msg ? msg.kind : "";
  m.dataset.code = (msg && msg.code) || "";
}
function showError(code, message) {
  state.msg = { kind: "error", code, message };
  renderMessage();
}
function showOk(key, vars) {
  state.msg = { kind: "ok", key, vars };
  renderMessage();
}
function clearMessage() {
  state.msg = null;
  renderMessage();
}

// ---- the API ----
function refusal(code, message) {
  const e = new Error(message || code);
  e.code = code;
  e.serverMessage = message;
  return e;
}
async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: {
        ...(body ? { "content-type": "application/json" } : {}),
        ...(state.token ? { authorization: `Bearer ${state.token}` } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    throw refusal("network", String(e));
  }
  const data = await res.json().catch(() => ({ error: "internal", message: `HTTP ${res.status}` }));
  if (!res.ok) {
    const err = refusal(data.error || "internal", data.message);
    if (err.code === "not_logged_in") showLogin();
    throw err;
  }
  return data;
}
// A write: a fresh idempotency key for each action, except when the same action is
// sent again after the network failed (its answer unknown): then it reuses the key, so
// that what the agent did record is not recorded twice. Only a failed action's key is
// kept, so two scans of one item in flight at once are two scans.
const retry = {};
async function write(action, path, payload) {
  const sig = JSON.stringify(payload);
  const kept = retry[action];
  const key = kept && kept.sig === sig ? kept.key : newKey();
  delete retry[action];
  try {
    return await api("POST", path, { ...payload, idempotency_key: key });
  } catch (e) {
    if (e.code === "network") retry[action] = { sig, key };
    throw e;
  }
}
// Runs an action with its button disabled; a refusal is shown in words.
async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(e.code || "internal", e.serverMessage);
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- dialogs ----
// Asks for `fields` ([{name, label, type, value, list}]); resolves to the values, or
// null if cancelled. `info` is text shown above the fields.
function ask(title, fields, info) {
  const dlg = $("dlg");
  const form = $("dlg-form");
  form.replaceChildren(el("strong", title));
  if (info) form.appendChild(el("div", info));
  for (const f of fields) {
    const label = el("label");
    label.appendChild(el("span", f.label));
    const input = el("input");
    input.name = f.name;
    input.id = `dlg-${f.name}`;
    input.type = f.type || "text";
    input.autocomplete = "off";
    if (f.type === "password") input.inputMode = "numeric";
    if (f.list) input.setAttribute("list", f.list);
    if (f.value !== undefined) input.value = f.value;
    label.appendChild(input);
    form.appendChild(label);
  }
  const buttons = el("div", null, "row");
  const ok = el("button", t("ok"), "primary");
  ok.value = "ok";
  ok.id = "dlg-ok";
  const cancel = el("button", t("cancel"));
  cancel.value = "cancel";
  cancel.id = "dlg-cancel";
  buttons.append(ok, cancel);
  form.appendChild(buttons);
  return new Promise((resolve) => {
    dlg.onclose = () => {
      if (dlg.returnValue !== "ok") return resolve(null);
      const values = {};
      for (const f of fields) values[f.name] = form.elements[f.name].value;
      resolve(values);
    };
    dlg.returnValue = "";
    dlg.showModal();
    (form.querySelector("input") || ok).focus();
  });
}
const isManager = () => !!(state.user && state.user.role === "manager");
// A manager's login and PIN, asked for; null if cancelled.
async function askManager(title, info) {
  const first = state.managers.length === 1 ? state.managers[0].id : "";
  const v = await ask(title, [
    { name: "manager", label: t("manager"), list: "managers", value: first },
    { name: "pin", label: t("manager_pin"), type: "password" },
  ], info);
  return v ? { user: v.manager.trim(), pin: v.pin } : null;
}
// Sends `send(manager)`: with a manager's approval asked for first when `askFirst` (and
// the user is no manager), or asked for when the agent answers `needs_manager`.
async function approved(title, send, askFirst) {
  let manager;
  if (askFirst && !isManager()) {
    manager = await askManager(title);
    if (!manager) return null;
  }
  try {
    return await send(manager);
  } catch (e) {
    if (e.code !== "needs_manager" || manager) throw e;
    manager = await askManager(title, errorWords("needs_manager"));
    if (!manager) throw e;
    return send(manager);
  }
}

// ---- items ----
function learn(items) {
  for (const i of items || []) {
    state.names.set(i.sku, i.name);
    const g = i.gtin && gtinKey(i.gtin);
    if (g) state.gtins.set(g, i.sku);
  }
}
// The SKU a typed or scanned code names, when this page knows it.
function skuOf(code) {
  if (state.names.has(code)) return code;
  const g = gtinKey(code);
  return (g && state.gtins.get(g)) || null;
}
// Lines by SKU (or, for a barcode this page has not learned, by the code as typed: the
// agent resolves it when the document is recorded).
function addLine(lines, item, qty) {
  const key = item.sku ? `s:${item.sku}` : `c:${item.code}`;
  const line = lines.get(key);
  if (line) line.qty += qty;
  else lines.set(key, { key, sku: item.sku, code: item.code, name: item.name, qty });
}
// Lines typed as barcodes merge into their SKU's line once the barcode is known.
function rekey(lines) {
  for (const line of [...lines.values()]) {
    if (line.sku) continue;
    const sku = skuOf(line.code);
    if (!sku) continue;
    lines.delete(line.key);
    addLine(lines, { sku, code: sku, name: state.names.get(sku) }, line.qty);
  }
}
const lineCode = (l) => l.sku || l.code;

// The code field of a list of lines (receiving, write-off, transfer): a known SKU or
// barcode adds its line with the quantity field's number (1 unless changed); an
// unknown barcode is added as typed; words are looked up by name and offered to choose.
async function enterCode(prefix, lines, render) {
  const codeInput = $(`${prefix}-code`);
  const qtyInput = $(`${prefix}-qty`);
  const code = codeInput.value.trim();
  if (!code) return;
  const qty = readQty(qtyInput.value, false);
  if (qty === null) return showError("bad_quantity");
  const results = $(`${prefix}-results`);
  results.replaceChildren();
  const added = (item) => {
    addLine(lines, item, qty);
    codeInput.value = "";
    qtyInput.value = "1";
    clearMessage();
    render();
    codeInput.focus();
  };
  const sku = skuOf(code);
  if (sku) return added({ sku, code: sku, name: state.names.get(sku) });
  if (/^\d+$/.test(code)) return added({ sku: null, code, name: null });
  offerSearch(code, results, (item) => added({ sku: item.sku, code: item.sku, name: item.name }));
}
// Items found by name, as buttons: choosing one calls `choose(item)`.
async function offerSearch(text, results, choose) {
  let data;
  try {
    data = await api("GET", `/api/catalog/search?q=${encodeURIComponent(text)}`);
  } catch (e) {
    return showError(e.code, e.serverMessage);
  }
  learn(data.items);
  if (!data.items.length) return showError("unknown_sku");
  for (const item of data.items) {
    const b = el("button", item.name);
    b.type = "button";
    b.appendChild(el("span", item.sku, "sub"));
    b.onclick = () => {
      results.replaceChildren();
      choose(item);
    };
    results.appendChild(b);
  }
}
// A line's − and ✕ buttons.
function lineActions(lines, line, render) {
  const cell = td(null, "actions");
  const button = (text, title, fn) => {
    const b = el("button", text, "small");
    b.type = "button";
    b.title = title;
    b.setAttribute("aria-label", title);
    b.onclick = () => {
      fn();
      render();
    };
    cell.appendChild(b);
  };
  button("−", t("less"), () => {
    line.qty -= 1;
    if (line.qty <= 0) lines.delete(line.key);
  });
  button("✕", t("remove"), () => lines.delete(line.key));
  return cell;
}

// ---- receiving ----
function docTitle(doc) {
  if (!doc) return t("no_doc_title");
  const [kind, n] = doc.source.split(":");
  if (kind === "delivery") return t("delivery", { n });
  return t("transfer_from", { s: doc.from_store, n: (n || "").split("-")[1] || n });
}
async function loadInbound() {
  const data = await api("GET", "/api/stock/inbound").catch(() => null);
  if (!data) return;
  state.inbound = data.documents;
  renderInbound();
}
function renderInbound() {
  const list = $("inbound-list");
  list.replaceChildren();
  for (const doc of state.inbound) {
    const b = el("button", docTitle(doc));
    b.type = "button";
    b.dataset.source = doc.source;
    if (state.receiving && state.receiving.source === doc.source) b.className = "active";
    b.appendChild(el("span", `${when(doc.created_at_ms)} · ${t("lines_n", { n: doc.lines.length })}`, "sub"));
    b.onclick = () => chooseDoc(doc);
    list.appendChild(b);
  }
  $("inbound-empty").classList.toggle("hidden", state.inbound.length > 0);
}
async function chooseDoc(doc) {
  state.receiving = { source: doc ? doc.source : null, doc, lines: new Map() };
  state.results.receive = null;
  $("receive-note").value = "";
  renderInbound();
  renderReceive();
  $("receive-code").focus();
  if (!doc) return;
  // The expected items' barcodes, so that a scan counts against its line.
  const unknown = doc.lines.filter((l) => !state.searched.has(l.sku));
  await Promise.all(unknown.map(async (l) => {
    const found = await api("GET", `/api/catalog/search?q=${encodeURIComponent(l.name)}`).catch(() => null);
    if (found) {
      learn(found.items);
      state.searched.add(l.sku);
    }
  }));
  if (state.receiving && state.receiving.doc === doc) {
    rekey(state.receiving.lines);
    renderReceive();
  }
}
// The receiving table: every expected line with what came, then whatever else came.
function receiveRows(r) {
  const rows = [];
  const expected = r.doc ? r.doc.lines : [];
  for (const l of expected) {
    const line = r.lines.get(`s:${l.sku}`);
    rows.push({ sku: l.sku, name: l.name, expected: l.quantity, got: line ? line.qty : 0, line });
  }
  for (const line of r.lines.values()) {
    if (expected.some((l) => `s:${l.sku}` === line.key)) continue;
    rows.push({ sku: line.sku, name: line.name, code: line.code, expected: r.doc ? 0 : null, got: line.qty, line });
  }
  return rows;
}
function diffCell(diff) {
  if (diff === null) return td("", "num diff");
  return td(diff === 0 ? "0" : `${signed(diff)} (${t(diff < 0 ? "short" : "over")})`, "num diff");
}
const diffClass = (diff) => (diff === null ? "" : diff < 0 ? "short" : diff > 0 ? "over" : "done");
function renderReceive() {
  const r = state.receiving;
  $("receive-title").textContent = r ? docTitle(r.doc) : t("choose_doc");
  $("receive-work").classList.toggle("hidden", !r);
  const body = $("receive-lines");
  body.replaceChildren();
  renderResult("receive");
  if (!r) return;
  rekey(r.lines);
  let [s, o, k] = [0, 0, 0];
  for (const x of receiveRows(r)) {
    const diff = x.expected === null ? null : x.got - x.expected;
    if (diff !== null && diff < 0) s++;
    else if (diff !== null && diff > 0) o++;
    else if (diff !== null) k++;
    const notes = [];
    if (r.doc && x.expected === 0) notes.push(t("not_expected"));
    if (!x.sku) notes.push(t("unchecked"));
    const tr = row([
      itemCell(x.name, x.sku || x.code, notes),
      td(x.expected === null ? "—" : x.expected, "num"),
      td(x.got, "num got"),
      diffCell(diff),
      x.line ? lineActions(r.lines, x.line, renderReceive) : td(""),
    ], diffClass(diff));
    tr.dataset.sku = x.sku || x.code;
    body.appendChild(tr);
  }
  $("receive-summary").textContent = r.doc ? t("summary", { s, o, k }) : "";
}
async function acceptReceipt() {
  const r = state.receiving;
  if (!r) return;
  rekey(r.lines);
  const lines = [...r.lines.values()].filter((l) => l.qty > 0).map((l) => ({ code: lineCode(l), quantity: l.qty }));
  // Nothing to record: said before a manager is called over for it.
  if (!lines.length && r.source === null) return showError("movement_empty");
  const note = $("receive-note").value.trim();
  const m = await act($("receive-accept"), () =>
    approved(t("approve_receive"), (manager) =>
      write("receive", "/api/stock/receive", { source: r.source, lines, note, ...(manager ? { manager } : {}) }),
    r.source === null));
  if (!m) return;
  if (state.receiving === r) state.receiving = null;
  state.results.receive = m;
  showOk("received_done", { doc: docTitle(r.doc), seq: m.seq });
  renderReceive();
  loadInbound();
}

// ---- write-off and transfer ----
function renderLines(prefix, lines) {
  const body = $(`${prefix}-lines`);
  body.replaceChildren();
  for (const line of lines.values()) {
    const tr = row([
      itemCell(line.name, lineCode(line), line.sku ? [] : [t("unchecked")]),
      td(line.qty, "num"),
      lineActions(lines, line, () => renderLines(prefix, lines)),
    ]);
    tr.dataset.sku = lineCode(line);
    body.appendChild(tr);
  }
}
async function writeOff() {
  const lines = [...state.writeoff.values()].map((l) => ({ code: lineCode(l), quantity: l.qty }));
  const reason = $("wo-reason").value;
  const note = $("wo-note").value.trim();
  const m = await act($("wo-submit"), () =>
    approved(t("approve_writeoff"), (manager) =>
      write("writeoff", "/api/stock/write-off", { reason, lines, note, ...(manager ? { manager } : {}) }),
    false));
  if (!m) return;
  state.writeoff.clear();
  $("wo-note").value = "";
  state.results.writeoff = m;
  showOk("written_off", { r: t(`reason_${reason}`), seq: m.seq });
  renderLines("wo", state.writeoff);
  renderResult("writeoff");
}
async function transfer() {
  const store = String($("tr-store").value).trim();
  if (!/^\d{1,9}$/.test(store) || Number(store) === 0) return showError("bad_store");
  const lines = [...state.transfer.values()].map((l) => ({ code: lineCode(l), quantity: l.qty }));
  const note = $("tr-note").value.trim();
  const m = await act($("tr-submit"), () =>
    write("transfer", "/api/stock/transfer", { to_store: Number(store), lines, note }));
  if (!m) return;
  state.transfer.clear();
  $("tr-note").value = "";
  state.results.transfer = m;
  showOk("shipped", { s: m.to_store, seq: m.seq });
  renderLines("tr", state.transfer);
  renderResult("transfer");
}

// A recorded movement: what it says, who approved it, and its lines (a receipt's with
// what was expected and the difference, highlighted).
function renderResult(which) {
  const box = { receive: "receive-result", writeoff: "wo-result", transfer: "tr-result" }[which];
  const m = state.results[which];
  const out = $(box);
  out.replaceChildren();
  if (!m) return;
  const head = which === "receive"
    ? t("received_done", { doc: sourceWords(m), seq: m.seq })
    : which === "writeoff"
      ? t("written_off", { r: t(`reason_${m.reason.replace("write_off_", "")}`), seq: m.seq })
      : t("shipped", { s: m.to_store, seq: m.seq });
  out.appendChild(el("div", head));
  if (m.approved_by) out.appendChild(el("div", t("approved_by", { m: m.approved_by })));
  const table = el("table");
  const receipt = which === "receive";
  const heads = receipt ? ["item", "expected", "received", "difference"] : ["item", "qty"];
  table.appendChild(row(heads.map((h, i) => el("th", t(h), i ? "num" : ""))));
  let differ = 0;
  for (const l of m.lines) {
    const diff = l.expected === null || l.expected === undefined ? null : l.difference;
    if (diff) differ++;
    const cells = receipt
      ? [itemCell(l.name, l.sku), td(diff === null ? "—" : l.expected, "num"), td(l.quantity, "num"), diffCell(diff)]
      : [itemCell(l.name, l.sku), td(Math.abs(l.quantity), "num")];
    const tr = row(cells, receipt ? diffClass(diff) : "");
    tr.dataset.sku = l.sku;
    table.appendChild(tr);
  }
  out.appendChild(table);
  if (receipt && m.source) out.appendChild(el("div", differ ? t("differences_n", { n: differ }) : t("no_differences")));
}
function reasonWords(reason) {
  return t(`mv_${reason}`);
}
// Which document a movement names: a delivery, a transfer, a count, the store it went
// to; a receipt without one says so; a write-off names none ("").
function sourceWords(m) {
  if (m.to_store) return t("doc_to", { s: m.to_store });
  if (!m.source) return m.reason === "receipt" ? t("doc_none") : "";
  const [kind, rest] = m.source.split(":");
  if (kind === "delivery") return t("doc_delivery", { n: rest });
  if (kind === "transfer") return t("doc_transfer", { s: rest.split("-")[0] });
  if (kind === "count") return t("doc_count", { n: rest });
  return m.source;
}

// ---- stock counts ----
async function loadCounts() {
  const data = await api("GET", "/api/stock/counts").catch(() => null);
  if (!data) return;
  state.counts = data.counts;
  renderCountList();
}
const scopeWords = (c) => (c.categories ? c.categories.join(", ") : t("count_scope_all"));
function renderCountList() {
  const list = $("count-list");
  list.replaceChildren();
  for (const c of state.counts) {
    const b = el("button", t("count_title", { n: c.id }));
    b.type = "button";
    b.dataset.count = c.id;
    if (state.count && state.count.id === c.id) b.className = "active";
    b.appendChild(el("span", `${scopeWords(c)} · ${c.started_by}`, "sub"));
    b.onclick = () => chooseCount(c.id);
    list.appendChild(b);
  }
  $("count-none").classList.toggle("hidden", state.counts.length > 0);
}
async function chooseCount(id) {
  const report = await act(null, () => api("GET", `/api/stock/counts/${id}`));
  if (!report) return;
  state.count = report;
  state.results.count = null;
  renderCountList();
  renderCount();
  $("count-code").focus();
}
async function startCount(all) {
  let categories = null;
  if (!all) {
    categories = $("count-categories").value.split(",").map((c) => c.trim()).filter((c) => c);
    if (!categories.length) return $("count-categories").focus();
  } else if (!(await ask(t("start_all"), [], t("confirm_all")))) {
    return;
  }
  const button = $(all ? "count-start-all" : "count-start-cat");
  const report = await act(button, () => write("count-start", "/api/stock/counts", { categories }));
  if (!report) return;
  state.count = report;
  state.results.count = null;
  showOk("count_started", { n: report.id });
  renderCount();
  loadCounts();
  $("count-code").focus();
}
// One scan into the open count, sent at once; the answer is the count's report. The
// field is free for the next scan at once; after a network failure the code comes back
// (selected), so Enter retries the same scan with the same key.
let scansSent = 0;
let scanShown = 0;
let scansInFlight = 0;
async function countScan(code, qty) {
  const c = state.count;
  const n = ++scansSent;
  let report;
  scansInFlight++;
  try {
    report = await write("count-scan", `/api/stock/counts/${c.id}/scan`, { code, quantity: qty });
  } catch (e) {
    showError(e.code || "internal", e.serverMessage);
    if (e.code === "network" && !$("count-code").value) {
      $("count-code").value = code;
      $("count-qty").value = String(qty);
      $("count-code").select();
    }
    return;
  } finally {
    scansInFlight--;
  }
  // Answers may overtake each other: an older report never replaces a newer one.
  if (n < scanShown || !state.count || state.count.id !== report.id) return;
  scanShown = n;
  state.count = report;
  clearMessage();
  renderCount();
}
// Others count into the same count: its report is fetched again now and then, while
// none of this page's scans is on its way.
async function refreshCount() {
  const c = state.count;
  if (!c || c.posted !== null || scansInFlight) return;
  const report = await api("GET", `/api/stock/counts/${c.id}`).catch(() => null);
  if (!report || scansInFlight || state.count !== c) return;
  state.count = report;
  renderCount();
}
function enterCountCode() {
  const code = $("count-code").value.trim();
  if (!code || !state.count) return;
  const qty = readQty($("count-qty").value, true);
  if (qty === null) return showError("bad_quantity");
  $("count-results").replaceChildren();
  $("count-code").value = "";
  $("count-qty").value = "1";
  $("count-code").focus();
  if (skuOf(code) || /^\d+$/.test(code)) return countScan(code, qty);
  offerSearch(code, $("count-results"), (item) => countScan(item.sku, qty));
}
function renderCount() {
  const c = state.count;
  $("count-head").textContent = c ? t("count_title", { n: c.id }) : t("choose_count");
  const open = !!(c && c.posted === null);
  $("count-work").classList.toggle("hidden", !open);
  $("count-post").classList.toggle("hidden", !open);
  const body = $("count-lines");
  body.replaceChildren();
  const rest = $("count-uncounted-lines");
  rest.replaceChildren();
  $("count-uncounted").classList.add("hidden");
  renderCountResult();
  if (!c) {
    $("count-meta").textContent = "";
    return;
  }
  let meta = `${scopeWords(c)} · ${t("count_by", { u: c.started_by, d: when(c.started_at_ms) })}`;
  if (c.posted !== null) meta += ` · ${t("count_is_posted", { seq: c.posted })}`;
  $("count-meta").textContent = meta;
  for (const l of c.lines.filter((x) => !x.uncounted)) {
    const tr = row([itemCell(l.name, l.sku), td(l.book, "num"), td(l.counted, "num"), td(signed(l.difference), "num diff")],
      diffClass(l.difference));
    tr.dataset.sku = l.sku;
    body.appendChild(tr);
  }
  const uncounted = c.lines.filter((x) => x.uncounted);
  if (uncounted.length) {
    $("count-uncounted").classList.remove("hidden");
    $("count-uncounted-title").textContent = t("uncounted_n", { n: uncounted.length });
    for (const l of uncounted) rest.appendChild(row([itemCell(l.name, l.sku), td(l.book, "num")]));
  }
}
async function postCount() {
  const c = state.count;
  if (!c) return;
  const adjusted = c.lines.filter((l) => l.uncounted || l.difference !== 0).length;
  let manager;
  if (isManager()) {
    if (!(await ask(t("post_count"), [], t("confirm_count", { n: c.id })))) return;
  } else {
    manager = await askManager(t("approve_count", { n: c.id }));
    if (!manager) return;
  }
  const report = await act($("count-post"), () =>
    write("count-post", `/api/stock/counts/${c.id}/post`, manager ? { manager } : {}));
  if (!report) return;
  state.count = report;
  state.results.count = { id: report.id, seq: report.posted, k: adjusted };
  showOk("count_posted_done", { n: report.id, seq: report.posted, k: adjusted });
  renderCount();
  loadCounts();
}
function renderCountResult() {
  const r = state.results.count;
  $("count-result").textContent = r ? t("count_posted_done", { n: r.id, seq: r.seq, k: r.k }) : "";
}

// ---- stock on hand and movements ----
async function loadStock() {
  const data = await api("GET", "/api/stock").catch(() => null);
  if (!data) return;
  state.stock = data.stock;
  for (const s of data.stock) if (s.name) state.names.set(s.sku, s.name);
  renderStock();
}
const STOCK_ROWS_MAX = 200;
function renderStock() {
  const q = $("stock-search").value.trim().toLowerCase();
  const found = state.stock.filter((s) => !q || s.sku.toLowerCase().includes(q) || s.name.toLowerCase().includes(q));
  const body = $("stock-rows");
  body.replaceChildren();
  for (const s of found.slice(0, STOCK_ROWS_MAX)) {
    const tr = row([itemCell(s.name, s.sku), td(s.on_hand, "num")], s.on_hand < 0 ? "short" : "");
    tr.dataset.sku = s.sku;
    body.appendChild(tr);
  }
  $("stock-shown").textContent = t("shown", { n: Math.min(found.length, STOCK_ROWS_MAX), m: found.length });
}
async function loadMoves() {
  const data = await api("GET", "/api/stock/movements").catch(() => null);
  if (!data) return;
  state.moves = data.movements;
  renderMoves();
}
const MOVES_ROWS_MAX = 100;
const MOVE_LINES_SHOWN = 4;
function renderMoves() {
  const body = $("moves-rows");
  body.replaceChildren();
  for (const m of state.moves.slice(0, MOVES_ROWS_MAX)) {
    const what = td(reasonWords(m.reason));
    const parts = [`№${m.seq}`, sourceWords(m), `${m.by}${m.approved_by ? ` / ${m.approved_by}` : ""}`];
    what.appendChild(el("span", parts.filter((p) => p).join(" · "), "sku"));
    if (m.note) what.appendChild(el("span", m.note, "sku"));
    const lines = m.lines.slice(0, MOVE_LINES_SHOWN).map((l) => `${l.name || l.sku}: ${signed(l.quantity)}`);
    if (m.lines.length > MOVE_LINES_SHOWN) lines.push(t("more_lines", { n: m.lines.length - MOVE_LINES_SHOWN }));
    const items = td(null, "name");
    for (const text of lines) items.appendChild(el("div", text));
    const tr = row([td(when(m.created_at_ms)), what, items]);
    tr.dataset.seq = m.seq;
    body.appendChild(tr);
  }
}

// ---- tabs, language, login ----
const TABS = ["inbound", "writeoff", "transfer", "count", "stock"];
const FOCUS = { inbound: "receive-code", writeoff: "wo-code", transfer: "tr-code", count: "count-code", stock: "stock-search" };
function openTab(tab) {
  state.tab = TABS.includes(tab) ? tab : "inbound";
  if (location.hash !== `#${state.tab}`) history.replaceState(null, "", `#${state.tab}`);
  for (const name of TABS) $(`tab-${name}`).classList.toggle("hidden", name !== state.tab);
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === state.tab));
  if (!state.ready) return;
  if (state.tab === "inbound") loadInbound();
  if (state.tab === "count") loadCounts();
  if (state.tab === "stock") {
    loadStock();
    loadMoves();
  }
  const input = $(FOCUS[state.tab]);
  if (input && input.offsetParent) input.focus();
}
function renderAll() {
  $("who").textContent = state.user ? state.user.name : "";
  $("where").textContent = state.store ? t("store", { n: state.store }) : "";
  renderInbound();
  renderReceive();
  renderLines("wo", state.writeoff);
  renderLines("tr", state.transfer);
  renderResult("writeoff");
  renderResult("transfer");
  renderCountList();
  renderCount();
  renderStock();
  renderMoves();
  renderMessage();
}
function applyLang() {
  document.documentElement.lang = lang;
  document.title = t("title");
  document.querySelectorAll("[data-t]").forEach((e) => (e.textContent = t(e.dataset.t)));
  document.querySelectorAll("[data-tp]").forEach((e) => (e.placeholder = t(e.dataset.tp)));
  $("btn-lang").textContent = lang === "ru" ? "EN" : "RU";
  renderAll();
}

function showLogin() {
  state.token = null;
  state.ready = false;
  sessionStorage.removeItem("kassa.token");
  $("login").classList.remove("hidden");
  $("login-pin").value = "";
  ($("login-user").value ? $("login-pin") : $("login-user")).focus();
}
// After a login (or with the cashier page's session): who may approve, the item names,
// and the open tab's data.
async function loggedIn() {
  $("login").classList.add("hidden");
  const users = await api("GET", "/api/users").catch(() => null);
  if (users) {
    state.managers = users.users.filter((u) => u.role === "manager");
    state.store = users.store;
    $("managers").replaceChildren(...state.managers.map((u) => {
      const o = el("option", u.name);
      o.value = u.id;
      return o;
    }));
  }
  state.ready = true;
  // The names first: a SKU typed is then known at once.
  if (state.tab !== "stock") await loadStock();
  renderAll();
  openTab(state.tab);
}
$("login-form").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const data = await api("POST", "/api/login", { user: $("login-user").value.trim(), pin: $("login-pin").value });
    state.token = data.token;
    state.user = data.user;
    state.store = data.store;
    sessionStorage.setItem("kassa.token", data.token);
    $("login-pin").value = "";
    $("login-message").textContent = "";
    await loggedIn();
  } catch (err) {
    // The next PIN is typed into an empty field, never after the wrong one.
    $("login-pin").value = "";
    $("login-pin").focus();
    $("login-message").textContent = errorWords(err.code, err.serverMessage);
  }
};

// ---- wiring ----
document.querySelectorAll("#tabs button").forEach((b) => (b.onclick = () => openTab(b.dataset.tab)));
$("btn-lang").onclick = () => {
  lang = lang === "ru" ? "en" : "ru";
  localStorage.setItem("kassa.lang", lang);
  applyLang();
};
$("btn-logout").onclick = async () => {
  await api("POST", "/api/logout").catch(() => null);
  state.user = null;
  showLogin();
};
$("inbound-refresh").onclick = loadInbound;
$("no-doc").onclick = () => chooseDoc(null);
$("receive-form").onsubmit = (e) => {
  e.preventDefault();
  if (state.receiving) enterCode("receive", state.receiving.lines, renderReceive);
};
$("receive-accept").onclick = acceptReceipt;
$("wo-form").onsubmit = (e) => {
  e.preventDefault();
  enterCode("wo", state.writeoff, () => renderLines("wo", state.writeoff));
};
$("wo-submit").onclick = writeOff;
$("tr-form").onsubmit = (e) => {
  e.preventDefault();
  enterCode("tr", state.transfer, () => renderLines("tr", state.transfer));
};
$("tr-submit").onclick = transfer;
$("count-form").onsubmit = (e) => {
  e.preventDefault();
  enterCountCode();
};
$("count-start-all").onclick = () => startCount(true);
$("count-start-cat").onclick = () => startCount(false);
$("count-post").onclick = postCount;
$("stock-search").oninput = renderStock;
$("stock-refresh").onclick = () => {
  loadStock();
  loadMoves();
};
window.addEventListener("hashchange", () => openTab(location.hash.slice(1)));
// What is expected changes as HQ announces deliveries: the list follows while it is shown.
// A count's report follows the others counting into it.
setInterval(() => {
  if (!state.ready || document.hidden) return;
  if (state.tab === "inbound") loadInbound();
  if (state.tab === "count") refreshCount();
}, 15000);

(async () => {
  state.tab = TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "inbound";
  applyLang();
  openTab(state.tab);
  if (state.token) {
    try {
      const me = await api("GET", "/api/me");
      state.user = me.user;
      state.store = me.store;
      await loggedIn();
      return;
    } catch (e) {
      if (e.code !== "not_logged_in") showError(e.code, e.serverMessage);
    }
  }
  showLogin();
})();
