// The cashier page: plain JS, no build step. State comes from the agent's
// server-sent events; every action is a JSON request whose refusal is shown in words.
"use strict";

const $ = (id) => document.getElementById(id);
const rub = (k) => {
  const sign = k < 0 ? "-" : "";
  const a = Math.abs(k);
  return `${sign}${Math.floor(a / 100)},${String(a % 100).padStart(2, "0")}`;
};

// What the cashier reads for each refusal, and what to do next.
const ERRORS = {
  unknown_barcode: "Товар не найден в каталоге. Проверьте штрихкод или введите вручную.",
  unknown_plu: "Весовой товар с таким PLU не найден.",
  rejected_scan: "Код не распознан. Отсканируйте ещё раз.",
  no_catalog: "Каталог ещё не получен от HQ. Дождитесь связи.",
  quantity: "Неверное количество.",
  basket_full: "Чек заполнен. Оплатите и начните новый.",
  empty_basket: "Чек пуст: сначала отсканируйте товар.",
  payment_short: "Недостаточно денег для оплаты.",
  card_overpaid: "Картой нельзя оплатить больше суммы чека.",
  bad_tender: "Неверная сумма оплаты.",
  internal: "Внутренняя ошибка. Позовите администратора.",
};

const STATES = { closed: "не подключён", idle: "готов", busy: "печатает", error: "ошибка" };

function show(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind;
}

function render(ev) {
  const body = $("basket");
  body.replaceChildren();
  ev.basket.lines.forEach((l, i) => {
    const tr = document.createElement("tr");
    const qty = l.unit === "Kilogram" ? `${(l.quantity / 1000).toFixed(3)} кг` : `${l.quantity}`;
    for (const [text, cls] of [[i + 1, ""], [l.name, ""], [qty, "num"], [rub(l.price), "num"], [rub(l.amount), "num"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.textContent = "✕";
    b.title = "Удалить строку";
    b.onclick = () => call("DELETE", `/api/basket/lines/${i}`);
    td.appendChild(b);
    tr.appendChild(td);
    body.appendChild(tr);
  });
  const t = ev.totals;
  $("total").textContent = rub(t ? t.total : 0);
  $("vat").textContent = t ? t.vat.filter((v) => v.vat !== 0).map((v) => `в т.ч. НДС: ${rub(v.vat)}`).join(" · ") : "";
  $("lines").scrollTop = $("lines").scrollHeight;
}

function renderStatus(s) {
  $("hq-dot").className = s.hq.online ? "dot on" : "dot";
  $("hq").textContent = s.hq.online
    ? `HQ: на связи${s.hq.backlog ? `, к отправке ${s.hq.backlog}` : ""}`
    : `HQ: нет связи${s.hq.backlog ? `, к отправке ${s.hq.backlog}` : ""}`;
  const dev = (name, d) => (d.configured ? `${name}: ${STATES[d.state] || d.state}${d.detail ? ` (${d.detail})` : ""}` : `${name}: —`);
  $("scanner").textContent = dev("Сканер", s.scanner);
  $("printer").textContent = dev("Принтер", s.printer);
}

async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({ error: "internal" }));
  if (!res.ok) {
    show(ERRORS[data.error] || data.message || "Ошибка", "error");
    throw new Error(data.error);
  }
  return data;
}

function parseRoubles(text) {
  const m = text.trim().replace(",", ".").match(/^(\d+)(?:\.(\d{1,2}))?$/);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || "0").padEnd(2, "0"));
}

async function pay(kind) {
  const total = Number($("total").dataset.kopecks || 0);
  let amount = total;
  if (kind === "cash" && $("cash").value.trim() !== "") {
    amount = parseRoubles($("cash").value);
    if (amount === null) return show("Введите сумму наличных, например 500 или 500,50.", "error");
  }
  const key = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  const data = await call("POST", "/api/pay", { idempotency_key: key, tenders: [{ kind, amount_kopecks: amount }] }).catch(() => null);
  if (!data) return;
  const s = data.sale;
  $("cash").value = "";
  show(`Чек ${s.receipt_no}: ${rub(s.total)} ₽. Сдача: ${rub(s.change)} ₽`, "ok");
}

$("scan-form").onsubmit = async (e) => {
  e.preventDefault();
  const code = $("code").value.trim();
  $("code").value = "";
  if (code) await call("POST", "/api/basket/scan", { code }).then(() => show("", "")).catch(() => {});
};
$("pay-cash").onclick = () => pay("cash");
$("pay-card").onclick = () => pay("card");
$("void").onclick = () => call("POST", "/api/basket/void").then(() => show("Чек отменён", "ok")).catch(() => {});
document.addEventListener("keydown", (e) => {
  if (e.key === "F9") { e.preventDefault(); pay("cash"); }
  if (e.key === "F10") { e.preventDefault(); pay("card"); }
});

const events = new EventSource("/api/events");
events.onmessage = (m) => {
  const ev = JSON.parse(m.data);
  if (ev.type === "basket") {
    render(ev);
    $("total").dataset.kopecks = ev.totals ? ev.totals.total : 0;
    if (ev.basket.lines.length) show("", "");
  } else if (ev.type === "scan_rejected") {
    show(`${ERRORS.rejected_scan} (${ev.reason})`, "error");
  } else if (ev.type === "status") {
    renderStatus(ev.status);
  }
};
