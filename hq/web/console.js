// HQ's console: plain JS, no build step (embedded in kassa-hq). It logs in with
// POST /api/login (a session cookie the page never sees, and a CSRF token it sends with
// every write) and then speaks HQ's JSON API like any integration. Everything the
// server says is written as text (never as HTML). Money is integer kopecks in the API.
"use strict";

const $ = (id) => document.getElementById(id);

// ---- words ----
const WORDS = {
  ru: {
    console_title: "Kassa HQ — консоль", login: "Логин", password: "Пароль", log_in: "Войти", log_out: "Выход",
    tab_stores: "Магазины", tab_stock: "Остатки", tab_sales: "Продажи", tab_parked: "Отложенные", tab_customers: "Клиенты",
    tab_catalog: "Каталог", tab_loyalty: "Лояльность", tab_promotions: "Акции", tab_audit: "Журнал", tab_operators: "Операторы",
    save: "Сохранить", tab_returns: "Возвраты", return_limits: "Возвраты чеков других магазинов без связи с HQ", per_receipt: "На чек, ₽", per_shift: "За смену, ₽",
    limits_saved: "Пределы сохранены: версия {v}; магазины получат их при связи", over_returns: "Возвращено больше, чем продано",
    sold: "Продано", returned: "Возвращено", returns_list: "Возвраты", receipt: "Чек", store_receipt: "магазин № {s}: {r}",
    purchases: "Покупки во всех магазинах", orders: "Заказы", sale_word: "продажа", return_word: "возврат",
    tab_tokens: "Токены API", refresh: "Обновить", store: "Магазин", link: "Связь", last_contact: "Последняя связь",
    backlog: "Очередь", acked: "Принято", sales: "Продажи", protocol: "Протокол", software: "Версия", show: "Показать",
    quantity: "Количество", reserved: "В резерве", available: "Доступно", receipt: "Чек", time: "Время", kind: "Вид", total: "Сумма", lines: "Строки", seq: "Номер",
    reason: "Причина", find: "Найти", upload_title: "Загрузить файл CSV", publish: "Опубликовать", price_title: "Изменить цену",
    sku: "Артикул", new_price: "Новая цена, ₽", publish_price: "Опубликовать цену", items_title: "Товары", name: "Название",
    price: "Цена", loyalty_rules: "Правила лояльности", from: "С", to: "По", channels: "Каналы", who: "Кто", action: "Действие",
    what: "Что", more: "Ещё", role: "Роль", state: "Состояние", add_operator: "Добавить оператора", add: "Добавить",
    scopes: "Права", issue_token: "Выпустить токен", issue: "Выпустить", sku_ph: "Артикул", store_ph: "Номер магазина",
    card_ph: "Номер карты", items_ph: "Артикул, штрихкод или название", password_opt: "Пароль (необязательно)",
    days_opt: "Дней (необязательно)",
    upload_hint: "Сначала будет показано, что изменится; ничего не публикуется без подтверждения.",
    online: "на связи", offline: "нет связи", behind: "отстаёт", ago_s: "{n} с назад", ago_m: "{n} мин назад", ago_h: "{n} ч назад",
    ago_d: "{n} дн назад", never: "никогда", stores_behind: "Отстают магазины: {list}. Проверьте связь с ними.",
    sale: "продажа", return: "возврат", no_rows: "Нет данных", balance: "Баланс", earned: "Начислено", spent: "Списано",
    rights: "Права списания", history: "По магазинам", phone: "Телефон", customer: "Клиент",
    version: "версия {v}", items_n: "{n} товаров", bad_lines: "Файл не принят, ничего не опубликовано. Исправьте строки:",
    identical: "Файл совпадает с действующим каталогом — публиковать нечего.",
    preview_counts: "Будет добавлено: {a}, изменено: {c}, удалено: {r}.", added: "Добавляются", changed: "Меняются",
    removed: "Удаляются", confirm_removals: "Я подтверждаю удаление {n} товаров из всех магазинов",
    must_confirm: "Файл удаляет товары: отметьте подтверждение.", published: "Опубликована версия каталога {v}.",
    price_published: "Цена {sku} опубликована: {p} ₽ (версия каталога {v}).", bad_price: "Цена — число рублей, например 119,90",
    earn: "Рублей за балл", point_value: "Цена балла, ₽", max_share: "Доля чека баллами, %", excluded: "Не начисляются",
    none: "нет", active: "активен", disabled: "отключён", revoked: "отозван", expired: "истёк", disable: "Отключить",
    enable: "Включить", revoke: "Отозвать", password_once: "Пароль (показан один раз): {p}",
    token_once: "Токен (показан один раз, сохраните его): {t}", operator_added: "Оператор {l} добавлен.",
    token_issued: "Токен {n} выпущен.", confirm_revoke: "Отозвать токен {n}?", session_ended: "Сеанс завершён, войдите снова.",
    network: "Нет связи с HQ: {e}", change_price: "Цена", no_such_item: "Нет такого товара", role_administrator: "администратор",
    role_merchandiser: "товаровед", role_operations: "операционист", role_support: "поддержка", role_read_only: "только чтение",
    err_bad_credentials: "Неверный логин или пароль.", err_locked: "Слишком много неверных паролей: вход закрыт на {n} с.",
    err_operator_disabled: "Этот оператор отключён; обратитесь к администратору.",
    err_forbidden: "Вашей роли это не разрешено.", err_csrf: "Страница устарела: обновите её.",
    err_session_expired: "Сеанс завершён, войдите снова.", attempts_left: "Осталось попыток: {n}.",
    err_database_unavailable: "База данных HQ недоступна: ничего не записано. Повторите через минуту — магазины тем временем продают.",
    tab_stockops: "Склад", delivery_title: "Объявить поставку", add_line: "Добавить строку", announce: "Объявить поставку",
    delivery_hint: "Строки: артикул и количество (штуки или граммы весового товара). Магазин получит поставку, как только будет на связи.",
    remove_line: "Убрать строку", qty_ph: "Количество", in_transit: "Перемещения в пути", document: "Документ",
    from_store: "Откуда", to_store: "Куда", shipped: "Отгружено", documents_title: "Документы к приёмке",
    only_open: "Только не принятые", created: "Создан", differences: "Расхождения", movements_title: "Движения за период",
    totals_title: "Итоги по причинам и товарам", movements_list: "Движения", note: "Примечание", net: "Итого",
    awaited: "ожидается", received_at: "принят {t} (движение {n})", hq_delivery: "поставка HQ", store_n: "магазин {n}",
    to_store_n: "→ магазин {n}", expected: "ожидалось {n}", approved: "утвердил {m}", pick_store: "Укажите магазин.",
    delivery_announced: "Поставка {d} объявлена магазину {s}: строк {n}.", delivery_refused: "Поставка не объявлена: {m}",
    bad_quantity: "строка {n}: количество — целое число штук или граммов.", bad_period: "Укажите период: даты «с» и «по».",
    reason_receipt: "приёмка", reason_write_off_damaged: "списание: порча", reason_write_off_expired: "списание: срок годности",
    reason_write_off_theft: "списание: кража", reason_write_off_other: "списание: прочее", reason_count: "инвентаризация",
    reason_transfer_out: "перемещение: отгрузка", reason_transfer_in: "перемещение: приёмка", reason_sale: "продажа",
    reason_return: "возврат",
    catalog_col: "Каталог", catalog_sent_v: "{c} (отправлена {v})", catalog_lacks: "нет версии {v}",
    catalog_title: "При последнем подключении магазин сообщил о версии {c}; HQ передал ему версию {v}",
    catalog_lacks_title: "HQ ещё не передал магазину версию каталога {v}",
    received_n: "Версию {v} получили: {n} из {m} {w}", stores_1: "магазина", stores_n: "магазинов",
    confirmed_n: "(подтвердили при подключении: {n}).", not_received: "Не получили: {list}.",
    store_has: "магазин {s} — версия {has}", no_stores: "Магазинов пока нет.",
    schedule_title: "Запланированные цены", schedule_at: "Дата и время (местное время магазина)",
    schedule_hint: "Новая цена действует с указанных даты и времени по местному времени каждого магазина (в каждом часовом поясе — по его часам), и без связи с HQ тоже. Публикуется всё расписание целиком.",
    schedule_empty: "Ничего не запланировано.", schedule_add: "Добавить изменение", schedule_revert: "Отменить правки",
    schedule_publish: "Опубликовать расписание", schedule_draft: "Есть неопубликованные правки.",
    schedule_version: "версия расписания {v}", schedule_refused: "Расписание не опубликовано: {m}",
    schedule_published: "Опубликована версия расписания цен {v}: изменений {n}.",
    schedule_clear: "Отменить все запланированные изменения цен?", schedule_nothing: "Расписание пусто: публиковать нечего.",
    remove_change: "Убрать изменение",
    price_ph: "99,90", sched_no_sku: "изменение {n}: укажите артикул.",
    sched_no_time: "изменение {n}: укажите дату и время.",
    sched_bad_price: "изменение {n}: цена — число рублей больше нуля, например 99,90.",
  },
  en: {
    console_title: "Kassa HQ — console", login: "Login", password: "Password", log_in: "Log in", log_out: "Log out",
    tab_stores: "Stores", tab_stock: "Stock", tab_sales: "Sales", tab_parked: "Parked", tab_customers: "Customers",
    tab_catalog: "Catalog", tab_loyalty: "Loyalty", tab_promotions: "Promotions", tab_audit: "Audit log", tab_operators: "Operators",
    save: "Save", tab_returns: "Returns", return_limits: "Returns of other stores' receipts without HQ", per_receipt: "Per receipt, ₽", per_shift: "Per shift, ₽",
    limits_saved: "Limits saved: version {v}; stores get them when connected", over_returns: "Returned beyond what was sold",
    sold: "Sold", returned: "Returned", returns_list: "Returns", receipt: "Receipt", store_receipt: "store {s}: {r}",
    purchases: "Purchases at every store", orders: "Orders", sale_word: "sale", return_word: "return",
    tab_tokens: "API tokens", refresh: "Refresh", store: "Store", link: "Link", last_contact: "Last contact",
    backlog: "Backlog", acked: "Acked", sales: "Sales", protocol: "Protocol", software: "Version", show: "Show",
    quantity: "Quantity", reserved: "Reserved", available: "Available", receipt: "Receipt", time: "Time", kind: "Kind", total: "Total", lines: "Lines", seq: "Seq",
    reason: "Reason", find: "Find", upload_title: "Upload a CSV file", publish: "Publish", price_title: "Change a price",
    sku: "SKU", new_price: "New price, ₽", publish_price: "Publish the price", items_title: "Items", name: "Name",
    price: "Price", loyalty_rules: "Loyalty rules", from: "From", to: "To", channels: "Channels", who: "Who", action: "Action",
    what: "What", more: "More", role: "Role", state: "State", add_operator: "Add an operator", add: "Add",
    scopes: "Scopes", issue_token: "Issue a token", issue: "Issue", sku_ph: "SKU", store_ph: "Store number",
    card_ph: "Card number", items_ph: "SKU, barcode or name", password_opt: "Password (optional)",
    days_opt: "Days (optional)",
    upload_hint: "You will see what changes first; nothing is published without your confirmation.",
    online: "online", offline: "offline", behind: "behind", ago_s: "{n} s ago", ago_m: "{n} min ago", ago_h: "{n} h ago",
    ago_d: "{n} d ago", never: "never", stores_behind: "Stores behind: {list}. Check their link to HQ.",
    sale: "sale", return: "return", no_rows: "Nothing here", balance: "Balance", earned: "Earned", spent: "Spent",
    rights: "Spending rights", history: "Per store", phone: "Phone", customer: "Customer",
    version: "version {v}", items_n: "{n} items", bad_lines: "File refused, nothing published. Fix these lines:",
    identical: "The file is identical to the catalog in force: nothing to publish.",
    preview_counts: "Added: {a}, changed: {c}, removed: {r}.", added: "Added", changed: "Changed",
    removed: "Removed", confirm_removals: "I confirm removing {n} items from every store",
    must_confirm: "The file removes items: tick the confirmation.", published: "Published catalog version {v}.",
    price_published: "Price of {sku} published: {p} ₽ (catalog version {v}).", bad_price: "A price is a number of roubles, e.g. 119.90",
    earn: "Roubles per point", point_value: "Point value, ₽", max_share: "Share payable in points, %", excluded: "Earn nothing",
    none: "none", active: "active", disabled: "disabled", revoked: "revoked", expired: "expired", disable: "Disable",
    enable: "Enable", revoke: "Revoke", password_once: "Password (shown once): {p}",
    token_once: "Token (shown once, keep it): {t}", operator_added: "Operator {l} added.",
    token_issued: "Token {n} issued.", confirm_revoke: "Revoke token {n}?", session_ended: "Your session has ended; log in again.",
    network: "Cannot reach HQ: {e}", change_price: "Price", no_such_item: "No such item", role_administrator: "administrator",
    role_merchandiser: "merchandiser", role_operations: "operations", role_support: "support", role_read_only: "read only",
    err_bad_credentials: "Wrong login or password.", err_locked: "Too many wrong passwords: locked for {n} s.",
    err_operator_disabled: "This operator is disabled; ask an administrator.",
    err_forbidden: "Your role may not do this.", err_csrf: "The page is out of date: reload it.",
    err_session_expired: "Your session has ended; log in again.", attempts_left: "Attempts left: {n}.",
    err_database_unavailable: "HQ's database cannot be reached: nothing was saved. Try again in a minute; the stores keep selling meanwhile.",
    tab_stockops: "Stock operations", delivery_title: "Announce a delivery", add_line: "Add a line", announce: "Announce the delivery",
    delivery_hint: "Lines: SKU and quantity (pieces, or grams of a weighed item). The store gets the delivery as soon as it is online.",
    remove_line: "Remove the line", qty_ph: "Quantity", in_transit: "Transfers in transit", document: "Document",
    from_store: "From", to_store: "To", shipped: "Shipped", documents_title: "Documents to receive",
    only_open: "Only those not received", created: "Created", differences: "Differences", movements_title: "Movements over a period",
    totals_title: "Totals per reason and SKU", movements_list: "Movements", note: "Note", net: "Net",
    awaited: "awaited", received_at: "received {t} (movement {n})", hq_delivery: "HQ delivery", store_n: "store {n}",
    to_store_n: "→ store {n}", expected: "expected {n}", approved: "approved by {m}", pick_store: "Enter a store.",
    delivery_announced: "Delivery {d} announced to store {s}: {n} lines.", delivery_refused: "Delivery not announced: {m}",
    bad_quantity: "line {n}: a quantity is a whole number of pieces or grams.", bad_period: "Enter a period: both dates.",
    reason_receipt: "receipt", reason_write_off_damaged: "write-off: damaged", reason_write_off_expired: "write-off: expired",
    reason_write_off_theft: "write-off: theft", reason_write_off_other: "write-off: other", reason_count: "stock count",
    reason_transfer_out: "transfer out", reason_transfer_in: "transfer in", reason_sale: "sale",
    reason_return: "return",
    catalog_col: "Catalog", catalog_sent_v: "{c} (sent {v})", catalog_lacks: "lacks version {v}",
    catalog_title: "At its last connect the store said it holds version {c}; HQ has handed it version {v}",
    catalog_lacks_title: "HQ has not yet handed catalog version {v} to this store",
    received_n: "Version {v} received by {n} of {m} {w}", stores_1: "store", stores_n: "stores",
    confirmed_n: "(confirmed at their last connect: {n}).", not_received: "Not received: {list}.",
    store_has: "store {s} — version {has}", no_stores: "No stores yet.",
    schedule_title: "Scheduled prices", schedule_at: "Date and time (the store's local time)",
    schedule_hint: "A new price applies from that date and time in each store's own local time (each time zone by its own clock), offline too. The whole schedule is published at once.",
    schedule_empty: "Nothing scheduled.", schedule_add: "Add a change", schedule_revert: "Discard edits",
    schedule_publish: "Publish the schedule", schedule_draft: "There are unpublished edits.",
    schedule_version: "schedule version {v}", schedule_refused: "Schedule not published: {m}",
    schedule_published: "Published price schedule version {v}: {n} changes.",
    schedule_clear: "Cancel every scheduled price change?", schedule_nothing: "The schedule is empty: nothing to publish.",
    remove_change: "Remove the change",
    price_ph: "99.90", sched_no_sku: "change {n}: enter a SKU.",
    sched_no_time: "change {n}: enter a date and time.",
    sched_bad_price: "change {n}: a price is a number of roubles above zero, e.g. 99.90.",
  },
};

let lang = localStorage.getItem("kassa-hq-lang") === "en" ? "en" : "ru";
const t = (key, vars = {}) => (WORDS[lang][key] ?? key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));

function applyWords() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll("[data-tp]")) e.placeholder = t(e.dataset.tp);
  for (const b of document.querySelectorAll("button.lang")) b.textContent = lang === "ru" ? "EN" : "RU";
}

// ---- helpers ----
/** An element with attributes and children (strings become text, never HTML). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

function fill(tbody, rows, cols) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: String(cols) }, t("no_rows")))]));
}

const money = (k) => {
  const sign = k < 0 ? "-" : "";
  const a = Math.abs(k);
  return `${sign}${Math.trunc(a / 100)}${lang === "ru" ? "," : "."}${String(a % 100).padStart(2, "0")}`;
};

/** Roubles as typed ("119,90", "119.9", "120") to kopecks, or null. No floats. */
function kopecks(text) {
  const m = /^\s*(\d{1,7})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] ?? "0").padEnd(2, "0"));
}

const when = (ms) => (ms ? new Date(ms).toLocaleString(lang === "ru" ? "ru-RU" : "en-GB") : t("never"));

function ago(ms) {
  if (!ms) return t("never");
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return t("ago_s", { n: s });
  if (s < 7200) return t("ago_m", { n: Math.round(s / 60) });
  if (s < 172800) return t("ago_h", { n: Math.round(s / 3600) });
  return t("ago_d", { n: Math.round(s / 86400) });
}

function say(text, kind = "ok") {
  const m = $("message");
  m.className = kind;
  m.textContent = text;
}

// ---- the API ----
let session = null; // { who, permissions, csrf }

/** A refusal in the page's language: known codes are translated (with the number the
 *  server's message carries, if any); others are shown as HQ words them. */
function explain(status, body) {
  const words = WORDS[lang]["err_" + body?.error];
  if (!words) return body?.message || `HTTP ${status}`;
  const n = /(\d+)/.exec(body.message || "")?.[1];
  let text = t("err_" + body.error, { n });
  if (body.error === "bad_credentials" && n) text += " " + t("attempts_left", { n });
  return text;
}

class Refusal extends Error {
  constructor(status, body) {
    super(explain(status, body));
    this.status = status;
    this.body = body || {};
  }
}

/** A JSON request; a write carries the CSRF token. Refusals throw a Refusal. */
async function api(method, path, body, contentType = "application/json") {
  const headers = {};
  if (method !== "GET") {
    if (session?.csrf) headers["X-CSRF-Token"] = session.csrf;
    if (body !== undefined) headers["Content-Type"] = contentType;
  }
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
    });
  } catch (e) {
    throw new Refusal(0, { error: "network", message: t("network", { e: e.message }) });
  }
  const answer = await resp.json().catch(() => ({}));
  if (resp.status === 401 && session && !path.startsWith("/api/login")) {
    session = null;
    showLogin(t("session_ended"));
  }
  if (!resp.ok) throw new Refusal(resp.status, answer);
  return answer;
}

/** Runs an action, showing a refusal in words instead of throwing. */
async function attempt(f) {
  try {
    await f();
  } catch (e) {
    if (e instanceof Refusal) say(e.message, "error");
    else throw e;
  }
}

const may = (p) => !!session && session.permissions.includes(p);

// ---- login ----
function showLogin(error = "") {
  $("app").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = error;
  $("login-user").focus();
}

function showApp() {
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
  const w = session.who;
  $("who").textContent = w.kind === "operator" ? `${w.login} (${t("role_" + w.role)})` : w.name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("hidden", !may(b.dataset.need));
  const first = [...document.querySelectorAll("#tabs button")].find((b) => !b.classList.contains("hidden"));
  openTab(location.hash.slice(1) || first?.dataset.tab || "stores");
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    session = await api("POST", "/api/login", { login: $("login-user").value.trim(), password: $("login-password").value });
    $("login-password").value = "";
    say("");
    showApp();
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    $("login-error").textContent = e.message;
  }
});

$("btn-logout").addEventListener("click", async () => {
  await api("POST", "/api/logout", {}).catch(() => {});
  session = null;
  showLogin();
});

for (const b of document.querySelectorAll("button.lang")) {
  b.addEventListener("click", () => {
    lang = lang === "ru" ? "en" : "ru";
    localStorage.setItem("kassa-hq-lang", lang);
    applyWords();
    if (session) showApp();
  });
}

// ---- tabs ----
const LOADERS = {
  stores: loadStores, stockops: loadStockOps, parked: loadParked, returns: loadReturns, catalog: loadCatalog, loyalty: loadLoyalty,
  promotions: loadPromotions,
  audit: () => loadAudit(false), operators: loadOperators, tokens: loadTokens,
};
let current = null;

function openTab(name) {
  const button = document.querySelector(`#tabs button[data-tab="${CSS.escape(name)}"]`);
  if (!button || button.classList.contains("hidden")) return;
  current = name;
  history.replaceState(null, "", "#" + name);
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b === button);
  for (const s of document.querySelectorAll("main > section")) s.classList.toggle("hidden", s.id !== "tab-" + name);
  say("");
  if (LOADERS[name]) attempt(LOADERS[name]);
}

for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => openTab(b.dataset.tab));

// ---- stores ----
/** A store is behind when it holds entries HQ has not, and HQ has not heard from it lately. */
const BEHIND_AFTER_MS = 5 * 60 * 1000;

/** HQ's catalog version, if the role may read the catalog (else null). */
async function currentCatalogVersion() {
  return may("catalog:read") ? (await api("GET", "/api/catalog")).version : null;
}

/** The catalog version the store said it holds when it last connected, and the one HQ
 *  has since handed its connection if newer: "0 (sent 2)". */
const catalogText = (s) => (s.catalog_sent > s.catalog_confirmed
  ? t("catalog_sent_v", { c: s.catalog_confirmed, v: s.catalog_sent }) : String(s.catalog_confirmed));

/** The store's catalog, flagged when HQ has not yet handed it the version in force. */
function catalogCell(s, version) {
  const text = catalogText(s);
  const lacks = version != null && Math.max(s.catalog_sent, s.catalog_confirmed) < version;
  const title = t("catalog_title", { c: s.catalog_confirmed, v: Math.max(s.catalog_sent, s.catalog_confirmed) });
  const flag = lacks
    ? [" ", el("span", { class: "badge bad", title: t("catalog_lacks_title", { v: version }) }, t("catalog_lacks", { v: version }))]
    : [];
  return el("td", { class: lacks ? "catalog lacks" : "catalog", title }, el("span", { class: "nowrap" }, text), flag);
}

const storesWord = (m) => t(lang === "ru" ? (m % 10 === 1 && m % 100 !== 11 ? "stores_1" : "stores_n") : (m === 1 ? "stores_1" : "stores_n"));

/** Which stores have catalog `version`: HQ handed it to their connection (received), and
 *  which said so themselves when they last connected; those without it, listed. */
function catalogReceipt(stores, version) {
  if (version == null) return [];
  if (!stores.length) return [t("no_stores")];
  const received = stores.filter((s) => Math.max(s.catalog_sent, s.catalog_confirmed) >= version);
  const confirmed = stores.filter((s) => s.catalog_confirmed >= version).length;
  const missing = stores.filter((s) => Math.max(s.catalog_sent, s.catalog_confirmed) < version);
  const counts = t("received_n", { v: version, n: received.length, m: stores.length, w: storesWord(stores.length) });
  return [el("span", { class: missing.length ? "badge bad" : "badge good" }, counts), " ", t("confirmed_n", { n: confirmed }),
    missing.length ? [" ", el("span", { class: "missing" },
      t("not_received", { list: missing.map((s) => t("store_has", { s: s.store, has: catalogText(s) })).join(", ") }))] : []];
}

async function loadStores() {
  const [{ stores }, version] = await Promise.all([api("GET", "/api/stores"), currentCatalogVersion()]);
  const behind = [];
  const rows = stores.map((s) => {
    const late = !s.connected && Date.now() - s.last_contact_ms > BEHIND_AFTER_MS;
    const isBehind = s.backlog > 0 && (late || !s.connected);
    if (isBehind) behind.push(s.store);
    return el("tr", { class: isBehind ? "behind" : "", "data-store": String(s.store) },
      el("td", {}, String(s.store), isBehind ? [" ", el("span", { class: "badge bad" }, t("behind"))] : []),
      el("td", {}, el("span", { class: s.connected ? "badge good" : "badge" }, t(s.connected ? "online" : "offline"))),
      el("td", { title: when(s.last_contact_ms) }, ago(s.last_contact_ms)),
      catalogCell(s, version),
      el("td", { class: "num" }, String(s.backlog)),
      el("td", { class: "num" }, `${s.acked_seq} / ${s.head}`),
      el("td", { class: "num" }, String(s.sales)),
      el("td", {}, s.protocol_version == null ? "—" : `kassa-sync/${s.protocol_version}`),
      el("td", {}, s.software_version));
  });
  fill($("stores-rows"), rows, 9);
  $("stores-catalog").replaceChildren(...catalogReceipt(stores, version).flat());
  $("stores-alert").textContent = t("stores_behind", { list: behind.join(", ") });
  $("stores-alert").classList.toggle("hidden", behind.length === 0);
}
$("stores-refresh").addEventListener("click", () => attempt(loadStores));
setInterval(() => { if (session && current === "stores") attempt(loadStores); }, 10000);

// ---- stock, sales, parked, customers ----
$("stock-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  attempt(async () => {
    const sku = $("stock-sku").value.trim();
    const { stores } = await api("GET", `/api/stock/${encodeURIComponent(sku)}`);
    fill($("stock-rows"), stores.map((s) => el("tr", {},
      el("td", {}, String(s.store)),
      el("td", { class: "num" }, String(s.quantity)),
      el("td", { class: "num" }, String(s.reserved || 0)),
      el("td", { class: "num" }, String(s.quantity - (s.reserved || 0))))), 4);
  });
});

$("sales-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  attempt(async () => {
    const store = $("sales-store").value.trim();
    const { sales } = await api("GET", `/api/stores/${encodeURIComponent(store)}/sales?limit=200`);
    fill($("sales-rows"), sales.map((s) => el("tr", {},
      el("td", {}, s.receipt_no), el("td", {}, when(s.created_at_ms)), el("td", {}, t(s.kind)),
      el("td", { class: "num" }, money(s.total_kopecks)),
      el("td", { class: "wrap" }, s.lines.map((l) => `${l.name} × ${l.quantity} = ${money(l.amount_kopecks)}`).join("; ")))), 5);
  });
});

async function loadParked() {
  const { parked } = await api("GET", "/api/parked");
  fill($("parked-rows"), parked.map((p) => el("tr", {},
    el("td", {}, String(p.id)), el("td", {}, String(p.store)), el("td", {}, String(p.seq)),
    el("td", { class: "wrap" }, p.reason), el("td", {}, when(p.parked_at_ms)))), 5);
}
$("parked-refresh").addEventListener("click", () => attempt(loadParked));

// ---- returns anywhere: HQ's limits on offline returns, and the lines returned beyond
// what was sold (stores that could not see each other's returns), with the returns ----
async function loadReturns() {
  if (may("stores:read")) {
    const { version, limits } = await api("GET", "/api/returns/limits");
    $("limit-receipt").value = money(limits.per_receipt_kopecks);
    $("limit-shift").value = money(limits.per_shift_kopecks);
    $("limits-version").textContent = t("version", { v: version });
  }
  $("limits-save").disabled = !may("stores:write");
  const { over_returns: over } = await api("GET", "/api/returns/over");
  fill($("over-rows"), over.map((o) => el("tr", {},
    el("td", {}, o.receipt_no), el("td", {}, o.sku), el("td", {}, String(o.sold)), el("td", {}, String(o.returned)),
    el("td", { class: "wrap" }, o.returns.map(([s, r]) => t("store_receipt", { s, r })).join("; ")),
    el("td", {}, when(o.detected_at_ms)))), 6);
}
$("returns-refresh").addEventListener("click", () => attempt(loadReturns));
$("limits-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  attempt(async () => {
    const [receipt, shift] = [kopecks($("limit-receipt").value), kopecks($("limit-shift").value)];
    if (receipt == null || shift == null) return say(t("bad_price"), "error");
    const { version } = await api("PUT", "/api/returns/limits", { per_receipt_kopecks: receipt, per_shift_kopecks: shift });
    say(t("limits_saved", { v: version }));
  });
});

$("customer-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  attempt(async () => {
    $("customer-view").replaceChildren();
    const card = $("customer-card").value.replace(/\s/g, "");
    const c = await api("GET", `/api/loyalty/${encodeURIComponent(card)}`);
    const list = (items) => el("ul", {}, items.length ? items : [el("li", {}, t("none"))]);
    $("customer-view").replaceChildren(
      el("p", {}, `${t("customer")}: ${c.customer.card} — ${c.customer.name ?? ""} (${t("phone")}: ${c.customer.phone})`),
      el("p", {}, `${t("balance")}: ${c.balance} · ${t("earned")}: ${c.earned} · ${t("spent")}: ${c.spent}`),
      el("h3", {}, t("rights")), list(c.rights.map((r) => el("li", {}, `${r.actor}: ${r.rights}`))),
      el("h3", {}, t("history")),
      list(c.history.map((h) => el("li", {}, `${h.actor}: ${h.earned != null ? "+" + h.earned : "−" + h.spent}`))));
    // One customer in every channel: what they bought with the card, and ordered.
    const h = await api("GET", `/api/customers/${encodeURIComponent(card)}/history`);
    $("customer-view").append(
      el("h3", {}, t("purchases")),
      el("ul", { id: "customer-purchases" }, h.purchases.length ? h.purchases.map((p) => el("li", {},
        `${when(p.created_at_ms)} · ${t("store_receipt", { s: p.store, r: p.receipt_no })} · `
        + `${t(p.kind === "sale" ? "sale_word" : "return_word")} ${money(p.total_kopecks)}`)) : [el("li", {}, t("none"))]),
      el("h3", {}, t("orders")),
      el("ul", { id: "customer-orders" }, h.orders.length ? h.orders.map((o) => el("li", {},
        `${when(o.created_at_ms)} · № ${o.id} · ${o.channel} · ${t("store")} ${o.store} · ${o.state} · ${money(o.total_kopecks)}`))
        : [el("li", {}, t("none"))]));
  });
});

// ---- stock operations: deliveries, documents to receive, transfers, movements ----
const REASONS = ["receipt", "transfer_in", "transfer_out", "count", "write_off_damaged", "write_off_expired",
  "write_off_theft", "write_off_other", "sale", "return"];
const reasonWord = (r) => WORDS[lang]["reason_" + r] ?? r;
const reasonOrder = (r) => (REASONS.includes(r) ? REASONS.indexOf(r) : REASONS.length);
const signed = (q) => (q > 0 ? `+${q}` : q < 0 ? `−${-q}` : "0");
const linesText = (lines) => lines.map((l) => `${l.name} (${l.sku}) × ${l.quantity}`).join("; ");
const opsStore = () => $("ops-store").value.trim();
/** SKU → name, from the documents and movements seen (totals carry SKUs only). */
const skuNames = new Map();

async function loadStockOps() {
  $("delivery-send").disabled = !may("stock:write");
  if (!$("delivery-lines").children.length) addDeliveryLine();
  if (!$("period-from").value || !$("period-to").value) lastDays(7);
  await loadStoreChoices();
  await Promise.all([loadTransfers(), loadStoreDocs()]);
}

const loadStoreDocs = () => Promise.all([loadInbound(), loadMovements()]);

/** Offers the stores HQ knows (if the role may list them); picks the first if none is. */
async function loadStoreChoices() {
  if (!may("stores:read")) return;
  const { stores } = await api("GET", "/api/stores");
  $("ops-store-list").replaceChildren(...stores.map((s) => el("option", { value: String(s.store) })));
  if (!opsStore() && stores.length) $("ops-store").value = String(stores[0].store);
}

$("ops-store-form").addEventListener("submit", (ev) => { ev.preventDefault(); attempt(loadStoreDocs); });
$("ops-refresh").addEventListener("click", () => attempt(() => Promise.all([loadTransfers(), loadStoreDocs()])));
$("inbound-open").addEventListener("change", () => attempt(loadInbound));
setInterval(() => { if (session && current === "stockops") attempt(() => Promise.all([loadTransfers(), loadInbound()])); }, 10000);

// Announcing a delivery: rows of SKU and quantity, numbered by CSS as HQ numbers them.
function addDeliveryLine() {
  const row = el("div", { class: "row line" },
    el("input", { class: "dl-sku", "data-tp": "sku_ph", placeholder: t("sku_ph") }),
    el("input", { class: "dl-qty", inputmode: "numeric", "data-tp": "qty_ph", placeholder: t("qty_ph") }),
    el("button", { type: "button", class: "small", title: t("remove_line"), onclick: () => removeDeliveryLine(row) }, "×"));
  $("delivery-lines").append(row);
  return row;
}

function removeDeliveryLine(row) {
  row.remove();
  if (!$("delivery-lines").children.length) addDeliveryLine();
}

$("delivery-add").addEventListener("click", () => addDeliveryLine().querySelector(".dl-sku").focus());
$("delivery-lines").addEventListener("input", (ev) => ev.target.closest(".line")?.classList.remove("bad"));

/** Drops blank rows (keeping one), so that "line N" in HQ's answer is row N on screen. */
function dropBlankLines() {
  for (const row of [...$("delivery-lines").children]) {
    const blank = [...row.querySelectorAll("input")].every((i) => !i.value.trim());
    if (blank && $("delivery-lines").children.length > 1) row.remove();
  }
}

/** The typed lines; a quantity that is not a whole number is refused here. */
function typedLines() {
  dropBlankLines();
  return [...$("delivery-lines").children].map((row, i) => {
    const quantity = row.querySelector(".dl-qty").value.trim();
    if (!/^\d{1,15}$/.test(quantity)) {
      row.classList.add("bad");
      throw new Refusal(0, { error: "bad_quantity", message: t("bad_quantity", { n: i + 1 }) });
    }
    return { sku: row.querySelector(".dl-sku").value.trim(), quantity: Number(quantity) };
  });
}

/** Marks the rows a refusal names: "line 2: …" (its row), or a SKU ("line 100001: …", "SKU … is on two lines"). */
function markNamedLines(message) {
  [...$("delivery-lines").children].forEach((row, i) => {
    const sku = row.querySelector(".dl-sku").value.trim();
    const bySku = sku !== "" && (message.includes(`line ${sku}:`) || message.includes(`SKU ${sku} `));
    row.classList.toggle("bad", message.includes(`line ${i + 1}:`) || bySku);
  });
}

async function announceDelivery() {
  $("delivery-error").textContent = "";
  const store = opsStore();
  if (!store) { $("delivery-error").textContent = t("pick_store"); return; }
  $("delivery-send").disabled = true;
  let answer;
  try {
    answer = await api("POST", `/api/stores/${encodeURIComponent(store)}/deliveries`, { lines: typedLines() });
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    if (e.status) markNamedLines(e.body.message || "");
    $("delivery-error").textContent = t("delivery_refused", { m: e.message });
    return;
  } finally {
    $("delivery-send").disabled = !may("stock:write");
  }
  $("delivery-lines").replaceChildren();
  addDeliveryLine();
  say(t("delivery_announced", { d: answer.delivery, s: answer.store, n: answer.lines.length }));
  await loadInbound();
}

$("delivery-form").addEventListener("submit", (ev) => { ev.preventDefault(); attempt(announceDelivery); });

// The store's documents to receive, and the transfers in transit across the chain.
function remember(lines) {
  for (const l of lines) skuNames.set(l.sku, l.name);
}

const origin = (fromStore) => (fromStore == null ? t("hq_delivery") : t("store_n", { n: fromStore }));
const diffText = (d) => `${d.name} (${d.sku}): ${signed(d.quantity)}`;

function docState(d) {
  if (d.received_seq == null) return el("span", { class: "badge" }, t("awaited"));
  return el("span", { class: "badge good" }, t("received_at", { t: when(d.received_at_ms), n: d.received_seq }));
}

function docDifferences(d) {
  if (d.received_seq == null) return "—";
  if (!d.differences.length) return t("none");
  return el("span", { class: "diff" }, d.differences.map(diffText).join("; "));
}

function inboundRow(d) {
  remember(d.lines);
  return el("tr", { class: d.differences.length ? "differs" : "", "data-source": d.source },
    el("td", {}, d.source), el("td", {}, origin(d.from_store)), el("td", {}, when(d.created_at_ms)),
    el("td", { class: "wrap" }, linesText(d.lines)), el("td", {}, docState(d)), el("td", { class: "wrap" }, docDifferences(d)));
}

async function loadInbound() {
  const store = opsStore();
  if (!store) { fill($("inbound-rows"), [], 6); return; }
  const open = $("inbound-open").checked;
  const { documents } = await api("GET", `/api/stores/${encodeURIComponent(store)}/inbound?open=${open}`);
  fill($("inbound-rows"), documents.map(inboundRow), 6);
}

async function loadTransfers() {
  const { transfers } = await api("GET", "/api/transfers?open=true");
  fill($("transfers-rows"), transfers.map((d) => el("tr", { "data-source": d.source },
    el("td", {}, d.source), el("td", {}, origin(d.from_store)), el("td", {}, t("store_n", { n: d.store })),
    el("td", {}, when(d.created_at_ms)), el("td", { class: "wrap" }, linesText(d.lines)))), 5);
}

// The store's movements over a period (whole days, the browser's time), and totals.
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;

function lastDays(n) {
  const from = new Date();
  from.setDate(from.getDate() - (n - 1));
  $("period-from").value = isoDay(from);
  $("period-to").value = isoDay(new Date());
}

/** The period typed, from the first day's midnight to the midnight after the last; or null. */
function period() {
  const from = new Date(`${$("period-from").value}T00:00`);
  const to = new Date(`${$("period-to").value}T00:00`);
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return null;
  to.setDate(to.getDate() + 1);
  return { from: from.getTime(), to: to.getTime() };
}

function refersTo(r) {
  if (r.delivery != null) return `delivery:${r.delivery}`;
  if (r.count != null) return `count:${r.count}`;
  if (r.to_store != null) return t("to_store_n", { n: r.to_store });
  return r.transfer ?? "";
}

function movementLine(l) {
  const expected = l.expected != null && l.expected !== l.quantity ? ` (${t("expected", { n: l.expected })})` : "";
  return `${l.name} (${l.sku}) ${signed(l.quantity)}${expected}`;
}

function movementRow(m) {
  remember(m.lines);
  return el("tr", { "data-seq": String(m.seq) },
    el("td", {}, when(m.created_at_ms)), el("td", { class: "num" }, String(m.seq)), el("td", {}, reasonWord(m.reason)),
    el("td", {}, refersTo(m.refers)), el("td", {}, m.approved_by ? `${m.by} (${t("approved", { m: m.approved_by })})` : m.by),
    el("td", { class: "wrap" }, m.lines.map(movementLine).join("; ")), el("td", { class: "wrap" }, m.note));
}

/** Totals as a table: a row per SKU, a column per reason present, and the net change. */
function showTotals(totals) {
  const reasons = [...new Set(totals.map((x) => x.reason))].sort((a, b) => reasonOrder(a) - reasonOrder(b));
  const skus = [...new Set(totals.map((x) => x.sku))].sort();
  const cell = new Map(totals.map((x) => [`${x.reason} ${x.sku}`, x.quantity]));
  $("totals-head").replaceChildren(el("tr", {}, el("th", {}, t("sku")), el("th", {}, t("name")),
    reasons.map((r) => el("th", { class: "num" }, reasonWord(r))), el("th", { class: "num" }, t("net"))));
  fill($("totals-rows"), skus.map((sku) => {
    const qs = reasons.map((r) => cell.get(`${r} ${sku}`));
    const net = qs.reduce((sum, q) => sum + (q ?? 0), 0);
    return el("tr", { "data-sku": sku }, el("td", {}, sku), el("td", {}, skuNames.get(sku) ?? ""),
      qs.map((q) => el("td", { class: "num" }, q == null ? "" : signed(q))), el("td", { class: "num" }, signed(net)));
  }), reasons.length + 3);
}

async function loadMovements() {
  const store = opsStore();
  const p = period();
  if (!store || !p) {
    if (store) say(t("bad_period"), "error");
    fill($("movements-rows"), [], 7);
    showTotals([]);
    return;
  }
  const m = await api("GET", `/api/stores/${encodeURIComponent(store)}/movements?from_ms=${p.from}&to_ms=${p.to}`);
  fill($("movements-rows"), m.movements.map(movementRow), 7);
  showTotals(m.totals);
}

$("period-form").addEventListener("submit", (ev) => { ev.preventDefault(); attempt(loadMovements); });

// ---- catalog ----
let pendingCsv = null; // the file previewed, until it is published or replaced

let catalogVersion = null;

/** The catalog's version and size, and which stores have received that version. */
async function loadCatalogSummary() {
  const c = await api("GET", "/api/catalog");
  if (catalogVersion != null && c.version !== catalogVersion) itemNames.clear(); // renamed items, perhaps
  catalogVersion = c.version;
  $("catalog-version").textContent = `${t("version", { v: c.version })} · ${t("items_n", { n: c.items })}`;
  if (!may("stores:read")) { $("catalog-receipt").replaceChildren(); return; }
  const { stores } = await api("GET", "/api/stores");
  $("catalog-receipt").replaceChildren(...catalogReceipt(stores, c.version).flat());
}

async function loadCatalog() {
  for (const id of ["catalog-publish", "price-save", "schedule-publish", "schedule-add"]) $(id).disabled = !may("catalog:write");
  await Promise.all([loadCatalogSummary(), searchItems(), scheduleDirty ? null : loadSchedule()]);
}

/** After a publish: now, and again once HQ has had a moment to hand it to the stores. */
async function catalogPublished() {
  await loadCatalogSummary();
  setTimeout(() => { if (session && current === "catalog") attempt(loadCatalogSummary); }, 3000);
}

$("catalog-refresh").addEventListener("click", () => attempt(loadCatalogSummary));
setInterval(() => { if (session && current === "catalog") attempt(loadCatalogSummary); }, 10000);

function resetPreview() {
  pendingCsv = null;
  $("catalog-errors").replaceChildren();
  $("catalog-preview").replaceChildren();
  $("confirm-label").classList.add("hidden");
  $("confirm-removals").checked = false;
  $("catalog-publish").classList.add("hidden");
}

function showCsvErrors(e) {
  const errors = e.body.errors || [];
  $("catalog-errors").replaceChildren(
    el("p", {}, errors.length ? t("bad_lines") : e.message),
    el("ul", {}, errors.map((r) => el("li", {}, `${lang === "ru" ? "строка" : "line"} ${r.line}: ${r.reason}`))));
}

function showPreview(p) {
  const item = (i) => el("li", {}, `${i.sku} — ${i.name}${i.price_kopecks != null ? ", " + money(i.price_kopecks) : ""}`);
  const change = (c) => el("li", {}, `${c.sku} — ${c.name}: ` + Object.entries(c.fields).map(([k, v]) =>
    k === "price_kopecks" ? `${money(v.from)} → ${money(v.to)}` : `${k}: ${v.from ?? "—"} → ${v.to ?? "—"}`).join(", "));
  const part = (title, list, render) => list.length ? [el("h3", {}, title), el("ul", {}, list.map(render))] : [];
  $("catalog-preview").replaceChildren(
    el("p", { id: "preview-counts" }, t("preview_counts", { a: p.added_count, c: p.changed_count, r: p.removed_count })),
    el("div", { id: "preview-lists" }, part(t("added"), p.added, item), part(t("changed"), p.changed, change), part(t("removed"), p.removed, item)));
  if (p.removed_count > 0) {
    $("confirm-text").textContent = t("confirm_removals", { n: p.removed_count });
    $("confirm-label").classList.remove("hidden");
  }
}

$("csv-file").addEventListener("change", () => attempt(async () => {
  resetPreview();
  say("");
  const file = $("csv-file").files[0];
  if (!file) return;
  const text = await file.text();
  try {
    const answer = await api("POST", "/api/catalog/preview", text, "text/csv");
    if (answer.identical) {
      $("catalog-preview").replaceChildren(el("p", {}, t("identical")));
      return;
    }
    pendingCsv = text;
    showPreview(answer.preview);
    $("catalog-publish").classList.remove("hidden");
  } catch (e) {
    if (e instanceof Refusal && e.status === 422) showCsvErrors(e);
    else throw e;
  }
}));

$("catalog-publish").addEventListener("click", () => attempt(async () => {
  if (pendingCsv == null) return;
  const confirm = $("confirm-removals").checked;
  if (!$("confirm-label").classList.contains("hidden") && !confirm) {
    say(t("must_confirm"), "error");
    return;
  }
  $("catalog-publish").disabled = true;
  try {
    const answer = await api("POST", "/api/catalog" + (confirm ? "?confirm_removals=true" : ""), pendingCsv, "text/csv");
    resetPreview();
    $("csv-file").value = "";
    say(answer.published ? t("published", { v: answer.version }) : t("identical"));
    await Promise.all([catalogPublished(), searchItems()]);
  } finally {
    $("catalog-publish").disabled = !may("catalog:write");
  }
}));

async function searchItems() {
  const q = $("items-q").value.trim();
  const { items } = await api("GET", `/api/catalog/items?limit=100&q=${encodeURIComponent(q)}`);
  for (const i of items) itemNames.set(i.sku, i.name);
  fill($("items-rows"), items.map((i) => el("tr", {},
    el("td", {}, i.sku), el("td", {}, i.name), el("td", { class: "num" }, money(i.price_kopecks) + (i.unit === "kg" ? "/kg" : "")),
    el("td", {}, el("button", { type: "button", class: "small", onclick: () => pickItem(i) }, t("change_price"))))), 4);
}
$("items-form").addEventListener("submit", (ev) => { ev.preventDefault(); attempt(searchItems); });

function pickItem(i) {
  $("price-sku").value = i.sku;
  $("price-item").textContent = `${i.name}: ${money(i.price_kopecks)} ₽`;
  $("price-new").value = "";
  $("price-new").focus();
}

$("price-sku").addEventListener("change", () => attempt(async () => {
  const sku = $("price-sku").value.trim();
  $("price-item").textContent = "";
  if (!sku) return;
  const { items } = await api("GET", `/api/catalog/items?limit=500&q=${encodeURIComponent(sku)}`);
  const found = items.find((i) => i.sku === sku);
  $("price-item").textContent = found ? `${found.name}: ${money(found.price_kopecks)} ₽` : t("no_such_item");
}));

$("price-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  attempt(async () => {
    const sku = $("price-sku").value.trim();
    const k = kopecks($("price-new").value);
    if (k == null) { say(t("bad_price"), "error"); return; }
    const answer = await api("PATCH", `/api/catalog/items/${encodeURIComponent(sku)}`, { price_kopecks: k });
    say(t("price_published", { sku, p: money(k), v: answer.version }));
    $("price-new").value = "";
    await Promise.all([catalogPublished(), searchItems()]);
  });
});

// ---- scheduled prices ----
// The whole schedule is edited here as rows, published with PUT (it replaces the one in
// force) and numbered as HQ numbers them in a refusal ("change 2: …"). Times are local
// date and time: each store applies a change at its own clock.
/** SKU → item name, from the catalog lists seen (cleared when the catalog changes). */
const itemNames = new Map();
let scheduleDirty = false;
let scheduleCount = 0; // changes in the schedule as HQ last said
const LOCAL_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?$/;

function setScheduleDirty(dirty) {
  scheduleDirty = dirty;
  $("schedule-draft").classList.toggle("hidden", !dirty);
  $("schedule-revert").classList.toggle("hidden", !dirty);
  if (dirty) $("schedule-status").textContent = "";
}

const scheduleRows = () => [...$("schedule-rows").children];
const showScheduleEmpty = () => $("schedule-empty").classList.toggle("hidden", scheduleRows().length > 0);

/** A row of the schedule, filled from `change` (as HQ gives it) or blank. */
function scheduleRow(change) {
  const write = may("catalog:write");
  const input = (cls, attrs) => el("input", { class: cls, ...attrs, ...(write ? {} : { disabled: "" }) });
  const row = el("tr", { class: "change" },
    el("td", { class: "n" }),
    el("td", {}, input("sc-sku", { "data-tp": "sku_ph", placeholder: t("sku_ph"), "aria-label": t("sku") })),
    el("td", { class: "sc-name" }),
    el("td", {}, input("sc-at", { type: "datetime-local", step: "60", "aria-label": t("schedule_at") })),
    el("td", {}, input("sc-price", { inputmode: "decimal", "data-tp": "price_ph", placeholder: t("price_ph"), "aria-label": t("new_price") })),
    el("td", {}, write ? el("button", { type: "button", class: "small sc-remove", title: t("remove_change"),
      "aria-label": t("remove_change"), onclick: () => removeScheduleRow(row) }, "×") : ""));
  if (change) {
    row.querySelector(".sc-sku").value = change.sku;
    row.querySelector(".sc-at").value = change.at;
    row.querySelector(".sc-price").value = money(change.price_kopecks);
    row.querySelector(".sc-name").textContent = itemNames.get(change.sku) ?? "";
  }
  return row;
}

function addScheduleRow() {
  const row = scheduleRow();
  $("schedule-rows").append(row);
  showScheduleEmpty();
  setScheduleDirty(true);
  row.querySelector(".sc-sku").focus();
}

function removeScheduleRow(row) {
  row.remove();
  showScheduleEmpty();
  setScheduleDirty(true);
}

/** The item's name: from the lists seen, else HQ's list searched for the SKU; null if none. */
async function lookUpName(sku) {
  if (!itemNames.has(sku)) {
    const { items } = await api("GET", `/api/catalog/items?limit=500&q=${encodeURIComponent(sku)}`);
    for (const i of items) itemNames.set(i.sku, i.name);
  }
  return itemNames.get(sku) ?? null;
}

/** Learns the names of `skus`: the catalog's first page, then each SKU still unknown (a few). */
async function learnNames(skus) {
  const unknown = () => [...new Set(skus)].filter((s) => !itemNames.has(s));
  if (!unknown().length) return;
  const { items } = await api("GET", "/api/catalog/items?limit=500");
  for (const i of items) itemNames.set(i.sku, i.name);
  await Promise.all(unknown().slice(0, 20).map(lookUpName));
}

/** The row's item name, once known (the old one stays until then: no jump under a finger). */
async function showName(row) {
  const sku = row.querySelector(".sc-sku").value.trim();
  const name = sku ? await lookUpName(sku) : "";
  if (row.querySelector(".sc-sku").value.trim() !== sku) return; // typed on meanwhile
  const cell = row.querySelector(".sc-name");
  cell.textContent = name ?? t("no_such_item");
  cell.classList.toggle("missing", name == null);
}

function showSchedule({ version, changes }) {
  scheduleCount = changes.length;
  $("schedule-version").textContent = t("schedule_version", { v: version });
  $("schedule-error").textContent = "";
  $("schedule-rows").replaceChildren(...changes.map(scheduleRow));
  showScheduleEmpty();
  setScheduleDirty(false);
}

async function loadSchedule() {
  const schedule = await api("GET", "/api/catalog/schedule");
  await learnNames(schedule.changes.map((c) => c.sku));
  showSchedule(schedule);
}

/** The rows as HQ takes them (blank rows dropped, so that "change N" is row N on screen);
 *  a row without a SKU, a time or a price in roubles is refused here, and marked. */
function typedSchedule() {
  for (const row of scheduleRows()) {
    if ([...row.querySelectorAll("input")].every((i) => !i.value.trim())) row.remove();
  }
  showScheduleEmpty();
  return scheduleRows().map((row, i) => {
    const refuse = (key) => {
      row.classList.add("bad");
      return new Refusal(0, { error: key, message: t(key, { n: i + 1 }) });
    };
    const sku = row.querySelector(".sc-sku").value.trim();
    const at = LOCAL_TIME.exec(row.querySelector(".sc-at").value)?.[1];
    const price = kopecks(row.querySelector(".sc-price").value);
    if (!sku) throw refuse("sched_no_sku");
    if (!at) throw refuse("sched_no_time");
    if (price == null || price < 1) throw refuse("sched_bad_price");
    return { sku, at, price_kopecks: price };
  });
}

/** Marks the row HQ's refusal names ("change 2: …"). */
function markNamedChange(message) {
  const n = Number(/\bchange (\d+)\b/.exec(message)?.[1] ?? 0);
  scheduleRows().forEach((row, i) => row.classList.toggle("bad", i + 1 === n));
}

async function publishSchedule() {
  $("schedule-error").textContent = "";
  $("schedule-status").textContent = "";
  for (const row of scheduleRows()) row.classList.remove("bad");
  $("schedule-publish").disabled = true;
  let answer;
  try {
    const changes = typedSchedule();
    if (!changes.length && scheduleCount === 0) { $("schedule-error").textContent = t("schedule_nothing"); return; }
    if (!changes.length && !window.confirm(t("schedule_clear"))) return;
    answer = await api("PUT", "/api/catalog/schedule", { changes });
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    if (e.status) markNamedChange(e.body.message || "");
    $("schedule-error").textContent = t("schedule_refused", { m: e.message });
    return;
  } finally {
    $("schedule-publish").disabled = !may("catalog:write");
  }
  await learnNames(answer.changes.map((c) => c.sku));
  showSchedule(answer);
  const done = t("schedule_published", { v: answer.version, n: answer.changes.length });
  $("schedule-status").textContent = done;
  say(done);
}

$("schedule-add").addEventListener("click", addScheduleRow);
$("schedule-publish").addEventListener("click", () => attempt(publishSchedule));
$("schedule-revert").addEventListener("click", () => attempt(loadSchedule));
$("schedule-rows").addEventListener("input", (ev) => {
  ev.target.closest("tr")?.classList.remove("bad");
  setScheduleDirty(true);
});
$("schedule-rows").addEventListener("change", (ev) => {
  const row = ev.target.closest("tr");
  if (row && ev.target.classList.contains("sc-sku")) attempt(() => showName(row));
});

// ---- loyalty, promotions ----
async function loadLoyalty() {
  const { version, rules } = await api("GET", "/api/loyalty/rules");
  const row = (k, v) => el("tr", {}, el("th", {}, k), el("td", {}, v));
  $("loyalty-view").replaceChildren(el("p", {}, t("version", { v: version })), el("table", {}, el("tbody", {},
    row(t("earn"), money(rules.earn_kopecks_per_point)), row(t("point_value"), money(rules.point_value_kopecks)),
    row(t("max_share"), String(rules.max_share_percent)),
    row(t("excluded"), (rules.excluded_categories || []).join(", ") || t("none")))));
}

async function loadPromotions() {
  const { version, promotions } = await api("GET", "/api/promotions");
  $("promotions-version").textContent = t("version", { v: version });
  fill($("promotions-rows"), promotions.map((p) => el("tr", {},
    el("td", {}, String(p.id)), el("td", {}, p.name), el("td", {}, p.kind?.type ?? ""), el("td", {}, p.from ?? ""),
    el("td", {}, p.to ?? ""), el("td", {}, (p.channels || []).join(", ")))), 6);
}

// ---- audit ----
let auditOldest = null;

async function loadAudit(more) {
  const before = more && auditOldest != null ? `&before=${auditOldest}` : "";
  const { entries } = await api("GET", `/api/audit?limit=100${before}`);
  const rows = entries.map((e) => el("tr", {},
    el("td", {}, when(e.at_ms)), el("td", {}, e.actor), el("td", {}, e.action), el("td", { class: "wrap" }, JSON.stringify(e.summary))));
  if (more) $("audit-rows").append(...rows);
  else fill($("audit-rows"), rows, 4);
  if (entries.length) auditOldest = entries[entries.length - 1].id;
  $("audit-more").classList.toggle("hidden", entries.length < 100);
}
$("audit-refresh").addEventListener("click", () => attempt(() => loadAudit(false)));
$("audit-more").addEventListener("click", () => attempt(() => loadAudit(true)));

// ---- operators and tokens ----
const ROLES = ["administrator", "merchandiser", "operations", "support", "read_only"];

function roleOptions(select) {
  select.replaceChildren(...ROLES.map((r) => el("option", { value: r }, t("role_" + r))));
}

async function loadOperators() {
  roleOptions($("op-role"));
  const { operators } = await api("GET", "/api/operators");
  fill($("operators-rows"), operators.map((o) => el("tr", {},
    el("td", {}, o.login), el("td", {}, o.name), el("td", {}, t("role_" + o.role)), el("td", {}, t(o.disabled ? "disabled" : "active")),
    el("td", {}, el("button", {
      type: "button", class: o.disabled ? "small" : "small danger",
      onclick: () => attempt(async () => {
        await api("PATCH", `/api/operators/${encodeURIComponent(o.login)}`, { disabled: !o.disabled });
        await loadOperators();
      }),
    }, t(o.disabled ? "enable" : "disable"))))), 5);
}

$("operator-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  attempt(async () => {
    $("op-result").textContent = "";
    const body = { login: $("op-login").value.trim(), name: $("op-name").value.trim(), role: $("op-role").value };
    if ($("op-password").value) body.password = $("op-password").value;
    const answer = await api("POST", "/api/operators", body);
    say(t("operator_added", { l: answer.operator.login }));
    if (answer.password) $("op-result").textContent = t("password_once", { p: answer.password });
    for (const id of ["op-login", "op-name", "op-password"]) $(id).value = "";
    await loadOperators();
  });
});

function tokenState(k) {
  if (k.revoked_at_ms) return t("revoked");
  if (k.expires_at_ms && k.expires_at_ms <= Date.now()) return t("expired");
  return t("active");
}

async function loadTokens() {
  roleOptions($("tok-role"));
  const { tokens } = await api("GET", "/api/tokens");
  fill($("tokens-rows"), tokens.map((k) => el("tr", {},
    el("td", {}, String(k.id)), el("td", {}, `${k.name} (${k.prefix}…)`), el("td", { class: "wrap" }, k.scopes.join(" ")),
    el("td", {}, tokenState(k)),
    el("td", {}, k.revoked_at_ms ? "" : el("button", {
      type: "button", class: "small danger",
      onclick: () => attempt(async () => {
        if (!window.confirm(t("confirm_revoke", { n: k.name }))) return;
        await api("DELETE", `/api/tokens/${k.id}`);
        await loadTokens();
      }),
    }, t("revoke"))))), 5);
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  attempt(async () => {
    $("tok-result").textContent = "";
    const body = { name: $("tok-name").value.trim(), role: $("tok-role").value };
    const days = $("tok-days").value.trim();
    if (days) body.days = Number(days);
    const answer = await api("POST", "/api/tokens", body);
    say(t("token_issued", { n: answer.name }));
    $("tok-result").textContent = t("token_once", { t: answer.token });
    $("tok-name").value = "";
    $("tok-days").value = "";
    await loadTokens();
  });
});

// ---- start: carry on a live session, or log in ----
applyWords();
api("GET", "/api/session").then((s) => { session = s; showApp(); }).catch(() => showLogin());
