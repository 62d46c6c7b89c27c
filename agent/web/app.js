// The cashier page: plain JS, no build step (embedded in the agent binary). State comes
// from the agent's server-sent events; every action is a JSON request whose refusal is
// shown in words, with what to do next. The shapes it reads are the API's format
// (agent/src/api/view.rs): codes ("kg", "card", "10", "with_receipt"), money in integer
// kopecks in `…_kopecks` fields; fields it does not know are ignored.
"use strict";

const $ = (id) => document.getElementById(id);

// ---- words ----
const WORDS = {
  ru: {
    refund_method: "Возврат денег (без чека)", orders: "Заказы (F1)", order_elsewhere: "Заказать", this_store: "этот магазин (№ {n})", pickup_store: "Магазин выдачи", customer_phone: "Телефон покупателя", order_note: "Комментарий (имя)", aisle_placed: "Заказ № {n} оформлен: магазин № {s}, код {c}, к оплате при получении {t} ₽", pay_now: "оплата сейчас", sold_at: "продажа в магазине № {n}", sold_online: "заказ интернет-магазина № {n}, оплачен онлайн", offline_left: "нет связи с HQ: по чеку подписи, возврат до {r} ₽ (за смену ещё {s} ₽)", aisle_pay_title: "Оплата заказа № {n}: {t} ₽", aisle_paid: "Заказ № {n} оплачен, чек предоплаты {r}: магазин № {s}, код {c}. Сдача: {ch} ₽", aisle_abandoned: "Заказ № {n} не оплачен и отменён", order_new: "новый", order_accepted: "принят", order_picking: "собирается", order_ready: "готов к выдаче", order_collected: "выдан", order_expired: "истёк", order_cancelled: "отменён", overdue: "просрочен", prepaid: "оплачен онлайн", at_pickup: "оплата при получении", until: "до", no_orders: "Заказов нет", order_pick: "Собрать", order_ready_btn: "Готов", order_hand_over: "Выдать", order_print: "Лист сборки", order_cancel: "Отказ", order_find_ph: "Код заказа, номер или телефон — Enter", order_moved: "Заказ № {n}: {s}", order_pay_by: "Оплата", order_closed: "Заказ уже {s}.", order_hand_over_title: "Выдача заказа № {n}", order_collected: "Заказ № {n} выдан", order_collected_paid: "Заказ № {n} выдан, чек {r}. Сдача: {c} ₽", reserved_short: "В резерве для заказов {r}, свободно {a}: чек берёт товар заказа", stock_reserved: "в резерве",
    title: "Касса", back_room: "Склад", park: "Отложить (F3)", parked_key: "Вернуть (F3)", parked: "Отложенные", recall: "Вернуть", parked_done: "Чек отложен", no_parked: "Отложенных чеков нет", receipts: "Чеки (F5)", sale_word: "продажа", return_word: "возврат", reprint: "Повтор", reprinted: "Копия чека {r} печатается", no_receipts: "В этой смене чеков ещё нет", multiplier_set: "× {n}: отсканируйте товар", void_needs_manager: "Отменить чек на такую сумму может только управляющий", shift: "Смена", returns: "Возврат", logout: "Выход", item: "Товар", qty: "Кол-во",
    price: "Цена", sum: "Сумма", total: "Итого", cash_given: "Наличные, ₽", pay_cash: "Оплатить наличными (F9)",
    pay_card: "Картой (F10)", pay_mixed: "Смешанная", discount: "Скидка (F4)", void: "Отменить чек (F8)",
    coupon: "Купон (F6)", coupon_code: "Код купона", saved: "Ваша выгода", promo: "Акция",
    code_ph: "Штрихкод, PLU или название — Enter", login_title: "Вход на кассу", login: "Войти", pin: "PIN",
    ok: "OK", cancel: "Отмена", no_shift: "Смена закрыта", shift_open: "Смена", hq_on: "HQ: на связи",
    hq_off: "HQ: нет связи", backlog: "к отправке", scanner: "Сканер", printer: "Принтер",
    st_closed: "не подключён", st_idle: "готов", st_busy: "печатает", st_error: "ошибка",
    returned: "Возврат {r}: {t} ₽ ({how})",
    voided: "Чек отменён", vat: "в т.ч. НДС", open_shift: "Открыть смену", float: "Размен, ₽",
    cash_in: "Внесение", cash_out: "Изъятие", amount: "Сумма, ₽", reason: "Причина", x_report: "X-отчёт (печать)",
    close_shift: "Закрыть смену (Z)", counted: "Пересчитано наличных, ₽", manager: "Управляющий",
    manager_pin: "PIN управляющего", new_price: "Новая цена, ₽", percent: "Скидка, %", grams: "Вес, г",
    card_amount: "Картой, ₽", cash_amount: "Наличными, ₽", receipt_code: "Номер чека или QR-код",
    find: "Найти", return_lines: "Вернуть выбранное", no_receipt: "Возврат без чека", sku: "Артикул",
    cancel_sale: "Аннулировать чек", left: "можно вернуть", expected: "Ожидается в кассе", sales: "Продажи",
    refunds: "Возвраты", stock: "Остаток в магазине", change_qty: "Количество", z_done: "Смена закрыта. Разница: {d} ₽",
    cash: "наличными", card: "на карту", points_refund: "баллами", no_vat: "без НДС",
    customer: "Клиент (F2)", pay_points: "Баллами (F7)", card_or_phone: "Карта или телефон", new_card: "Новая карта: телефон",
    offer_share_cap: "баллами можно оплатить не больше {p} % чека", offer_offline: "нет связи с HQ: только баллы этого магазина", offer_held_elsewhere: "остальные баллы у магазинов, с которыми у HQ нет связи",
    history: "История", history_title: "Покупки и заказы: {c}", history_hq: "Все магазины и интернет-магазин (из HQ)", history_local: "Нет связи с HQ: только покупки и заказы этого магазина", history_purchases: "Покупки", history_orders: "Заказы", no_history: "Покупок и заказов нет", store_n: "магазин № {n}", channel_online: "интернет-магазин", channel_till: "заказ на кассе",
    name: "Имя (необязательно)", points: "Баллов", balance: "баллов", spendable: "можно списать сейчас",
    user_id: "Логин", drawer_override: "Разрешение управляющего: выдать больше, чем в кассе",
    remove_line: "Удалить строку", kg: "кг", weight_kg: "Вес, кг (например 1,5)", receipt_paid: "Чек {r}: {t} ₽.",
    change_due: "Сдача: {c} ₽", attempts_left: "Осталось попыток: {n}.",
    cash_in_done: "Внесено {a} ₽. Ожидается в кассе: {e} ₽", cash_out_done: "Изъято {a} ₽. Ожидается в кассе: {e} ₽",
    shift_opened: "Смена {s} открыта. Размен: {f} ₽",
    alert_paper_out: "Принтер: нет бумаги. Вставьте новый рулон и закройте крышку — чек напечатается сам. Продавать можно дальше.",
    alert_cover_open: "Принтер: открыта крышка. Закройте крышку — чек напечатается сам. Продавать можно дальше.",
    alert_printer_gone: "Принтер не отвечает. Проверьте кабель и питание принтера — чеки напечатаются, когда он вернётся.",
    alert_printer_other: "Принтер: {w}. Чеки напечатаются, когда принтер будет готов; если не проходит, позовите администратора.",
    alert_scanner_gone: "Сканер не подключён. Проверьте кабель сканера; пока можно вводить штрихкод вручную.",
  },
  en: {
    refund_method: "Refund (without receipt)", orders: "Orders (F1)", order_elsewhere: "Order", this_store: "this store (no. {n})", pickup_store: "Pickup store", customer_phone: "Customer's phone", order_note: "Note (name)", aisle_placed: "Order no. {n} placed: store no. {s}, code {c}, {t} ₽ to pay at pickup", pay_now: "pay now", sold_at: "sold at store no. {n}", sold_online: "online shop order no. {n}, paid online", offline_left: "HQ not reachable: by the receipt's signature, up to {r} ₽ (this shift {s} ₽ more)", aisle_pay_title: "Payment for order no. {n}: {t} ₽", aisle_paid: "Order no. {n} paid, prepayment receipt {r}: store no. {s}, code {c}. Change: {ch} ₽", aisle_abandoned: "Order no. {n} not paid and cancelled", order_new: "new", order_accepted: "accepted", order_picking: "picking", order_ready: "ready for pickup", order_collected: "collected", order_expired: "expired", order_cancelled: "cancelled", overdue: "overdue", prepaid: "paid online", at_pickup: "pay at pickup", until: "until", no_orders: "No orders", order_pick: "Pick", order_ready_btn: "Ready", order_hand_over: "Hand over", order_print: "Picking list", order_cancel: "Refused", order_find_ph: "Order code, number or phone — Enter", order_moved: "Order no. {n}: {s}", order_pay_by: "Payment", order_closed: "This order is already {s}.", order_hand_over_title: "Hand over order no. {n}", order_collected: "Order no. {n} handed over", order_collected_paid: "Order no. {n} handed over, receipt {r}. Change: {c} ₽", reserved_short: "{r} reserved for orders, {a} free: this sale takes an order's goods", stock_reserved: "reserved",
    title: "Till", back_room: "Stock", park: "Park (F3)", parked_key: "Recall (F3)", parked: "Parked", recall: "Recall", parked_done: "Basket parked", no_parked: "No parked baskets", receipts: "Receipts (F5)", sale_word: "sale", return_word: "return", reprint: "Reprint", reprinted: "A copy of {r} is printing", no_receipts: "No receipts in this shift yet", multiplier_set: "× {n}: scan the item", void_needs_manager: "Only a manager may void a basket this large", shift: "Shift", returns: "Return", logout: "Log out", item: "Item", qty: "Qty",
    price: "Price", sum: "Amount", total: "Total", cash_given: "Cash given, ₽", pay_cash: "Pay cash (F9)",
    pay_card: "Card (F10)", pay_mixed: "Mixed", discount: "Discount (F4)", void: "Void basket (F8)",
    coupon: "Coupon (F6)", coupon_code: "Coupon code", saved: "You save", promo: "Offer",
    code_ph: "Barcode, PLU or name — Enter", login_title: "Log in", login: "Log in", pin: "PIN",
    ok: "OK", cancel: "Cancel", no_shift: "No shift open", shift_open: "Shift", hq_on: "HQ: online",
    hq_off: "HQ: offline", backlog: "to send", scanner: "Scanner", printer: "Printer",
    st_closed: "not connected", st_idle: "ready", st_busy: "printing", st_error: "error",
    returned: "Return {r}: {t} ₽ ({how})",
    voided: "Basket voided", vat: "incl. VAT", open_shift: "Open shift", float: "Float, ₽",
    cash_in: "Cash in", cash_out: "Cash out", amount: "Amount, ₽", reason: "Reason", x_report: "X report (print)",
    close_shift: "Close shift (Z)", counted: "Cash counted, ₽", manager: "Manager",
    manager_pin: "Manager's PIN", new_price: "New price, ₽", percent: "Discount, %", grams: "Weight, g",
    card_amount: "By card, ₽", cash_amount: "In cash, ₽", receipt_code: "Receipt number or QR code",
    find: "Find", return_lines: "Return selected", no_receipt: "Return without receipt", sku: "SKU",
    cancel_sale: "Cancel sale", left: "returnable", expected: "Expected in drawer", sales: "Sales",
    refunds: "Refunds", stock: "Stock in store", change_qty: "Quantity", z_done: "Shift closed. Difference: {d} ₽",
    cash: "in cash", card: "to card", points_refund: "as points", no_vat: "no VAT",
    customer: "Customer (F2)", pay_points: "Points (F7)", card_or_phone: "Card or phone", new_card: "New card: phone",
    offer_share_cap: "points pay at most {p} % of this basket", offer_offline: "HQ not reachable: only this store's points", offer_held_elsewhere: "the rest is held by stores HQ cannot reach",
    history: "History", history_title: "Purchases and orders: {c}", history_hq: "Every store and the online shop (from HQ)", history_local: "HQ not reachable: this store's purchases and orders only", history_purchases: "Purchases", history_orders: "Orders", no_history: "No purchases or orders", store_n: "store no. {n}", channel_online: "online shop", channel_till: "ordered at a till",
    name: "Name (optional)", points: "Points", balance: "points", spendable: "spendable now",
    user_id: "Login", drawer_override: "Manager's approval: pay out more than the drawer holds",
    remove_line: "Remove line", kg: "kg", weight_kg: "Weight, kg (e.g. 1.5)", receipt_paid: "Receipt {r}: {t} ₽.",
    change_due: "Change: {c} ₽", attempts_left: "Attempts left: {n}.",
    cash_in_done: "Paid in {a} ₽. Expected in drawer: {e} ₽", cash_out_done: "Paid out {a} ₽. Expected in drawer: {e} ₽",
    shift_opened: "Shift {s} open. Float: {f} ₽",
    alert_paper_out: "Printer: out of paper. Load a new roll and close the cover — the receipt prints by itself. You can keep selling.",
    alert_cover_open: "Printer: cover open. Close the cover — the receipt prints by itself. You can keep selling.",
    alert_printer_gone: "The printer does not answer. Check its cable and power — receipts print once it is back.",
    alert_printer_other: "Printer: {w}. Receipts print once the printer is ready; if it does not clear, call the administrator.",
    alert_scanner_gone: "The scanner is not connected. Check its cable; meanwhile type the barcode in.",
  },
};

// What the cashier reads for each refusal, and what to do next: one entry per code the
// API can send (`api::refusal_codes`; agent/tests/refusal_codes.rs fails on a code
// without words here in both languages), plus the page's own (`network`, `bad_amount`, `bad_weight`).
const ERRORS = {
  ru: {
    // The scanner and typed codes.
    unknown_barcode: "Товар не найден в каталоге: найдите его по названию или введите PLU.",
    unknown_plu: "Весового товара с таким PLU нет в каталоге: найдите товар по названию.",
    unknown_sku: "Нет такого артикула: проверьте его или найдите товар по названию.",
    no_catalog: "Каталог ещё не получен от HQ. Дождитесь связи.",
    scan_empty: "Сканер прислал пустой код: отсканируйте ещё раз.",
    scan_too_long: "Сканер прислал слишком длинный код: отсканируйте ещё раз. Если повторится, позовите администратора: проверьте настройки сканера.",
    scan_russian_layout: "Сканер печатает в русской раскладке: переключите раскладку на английскую и отсканируйте ещё раз.",
    scan_garbage: "Код пришёл с помехами: отсканируйте ещё раз. Если повторится, позовите администратора: проверьте настройки сканера.",
    scan_not_ascii: "В коде недопустимый символ: отсканируйте ещё раз. Если повторится, позовите администратора: проверьте настройки сканера.",
    scan_control_byte: "В коде лишний служебный символ: отсканируйте ещё раз. Если повторится, позовите администратора: проверьте префикс и суффикс сканера.",
    scan_add_on: "Прочитан дополнительный код рядом со штрихкодом: отсканируйте основной штрихкод.",
    scan_gs1_separators: "Код на упаковке прочитан без разделителей: сканер работает как клавиатура. Позовите администратора: переключите сканер в режим USB COM.",
    scan_gs1_check_digit: "Ошибка в коде на упаковке: отсканируйте другой штрихкод на ней или найдите товар по названию.",
    scan_gs1_malformed: "Код на упаковке не читается: отсканируйте другой штрихкод на ней или найдите товар по названию.",
    scan_check_digit: "Штрихкод прочитан с ошибкой: отсканируйте ещё раз.",
    scan_digit_count: "В штрихкоде товара 8, 12, 13 или 14 цифр: проверьте код или найдите товар по названию.",
    scan_weighed_template: "Весовая этикетка не распознана: перевесьте товар или найдите его по названию и введите вес.",
    scan_zero_weight: "На весовой этикетке нулевой вес: перевесьте товар.",
    scan_no_weight: "На этикетке весового товара нет веса: перевесьте товар или найдите его по названию и введите вес.",
    scan_no_gtin: "В этом коде нет номера товара: отсканируйте другой штрихкод на упаковке или найдите товар по названию.",
    scan_receipt_code: "QR-код чека не распознан: введите номер чека вручную (кнопка «Возврат»).",
    scan_loyalty_code: "Карта покупателя не распознана: введите номер карты или телефон (кнопка «Клиент»).",
    scan_stray_gs: "Код прочитан с лишними разделителями: отсканируйте ещё раз. Если повторится, позовите администратора: проверьте настройки сканера.",
    scan_unknown_format: "Это не штрихкод товара, карты или чека: найдите товар по названию.",
    // Logging in.
    not_logged_in: "Войдите на кассу.",
    no_such_user: "Нет такого пользователя.",
    wrong_pin: "Неверный PIN. Попробуйте ещё раз.",
    locked: "Слишком много неверных PIN. Вход заблокирован на несколько минут.",
    needs_manager: "Нужно разрешение управляющего: введите его PIN.",
    bad_user_id: "Логин — от 1 до 32 латинских букв, цифр, «-» или «_».",
    bad_user_name: "Имя — от 1 до 64 символов.",
    bad_pin_format: "PIN — от 4 до 8 цифр.",
    user_exists: "Пользователь с таким логином уже есть: выберите другой логин.",
    // The basket.
    quantity: "Неверное количество: от 1 до 100 000 штук, вес — до 100 кг.",
    basket_full: "Чек заполнен. Оплатите его и начните новый.",
    no_such_line: "Такой строки нет. Обновите страницу.",
    overflow: "Слишком большая сумма: проверьте количество и цену.",
    bad_price: "Новая цена должна быть больше нуля и не выше цены каталога.",
    bad_discount: "Скидка: от 1 до 50 % или сумма меньше итога.",
    bad_coupon: "Код купона: латинские буквы, цифры и «-», до 32 знаков; не больше 8 купонов на чек.",
    duplicate_marking: "Этот маркированный товар уже в чеке: отсканируйте следующую единицу.",
    marked_quantity: "Маркированный товар продаётся поштучно: сканируйте каждую единицу.",
    basket_changed: "Чек изменился: проверьте его и оплатите снова.",
    // Paying.
    empty_basket: "Чек пуст: сначала отсканируйте товар.",
    payment_short: "Недостаточно денег для оплаты. Введите полученную сумму.",
    card_overpaid: "Картой нельзя оплатить больше суммы чека.",
    bad_tender: "Неверная сумма оплаты.",
    change_too_large: "Сдача больше 5 000 ₽: проверьте сумму наличных.",
    // Loyalty.
    no_such_customer: "Клиент не найден. Проверьте номер карты или телефона.",
    points_not_available: "Столько баллов сейчас списать нельзя: спишите меньше или оплатите остаток деньгами.",
    points_need_customer: "Чтобы оплатить баллами, сначала укажите клиента (кнопка «Клиент»).",
    points_step: "Баллами оплачивается сумма, кратная стоимости балла: исправьте число баллов.",
    points_negative: "Число баллов не может быть отрицательным.",
    points_over_share: "Баллами можно оплатить только часть чека: спишите меньше баллов.",
    points_over_eligible: "Часть товаров в чеке нельзя оплатить баллами: спишите меньше баллов.",
    points_mismatch: "Баллы этого чека не сходятся с его строками: позовите администратора.",
    points_account: "Бонусный счёт клиента не принял операцию: позовите администратора.",
    bad_card_number: "Номер карты — от 6 до 20 цифр: проверьте его.",
    bad_phone: "Номер телефона — от 8 до 15 цифр: проверьте его.",
    bad_customer_name: "Имя клиента — не больше 64 символов.",
    phone_has_card: "На этот телефон уже выдана карта: найдите клиента по телефону.",
    card_numbers_exhausted: "Магазин выдал все номера карт: позовите администратора.",
    // Returns.
    no_such_sale: "Чек не найден. Проверьте номер.",
    already_cancelled: "Этот чек уже аннулирован.",
    over_return: "Столько вернуть нельзя: часть уже возвращена.",
    return_no_such_line: "В чеке нет такой строки: найдите чек заново.",
    return_quantity: "Количество к возврату должно быть больше нуля.",
    return_empty: "Выберите товары и количество для возврата.",
    return_duplicate_line: "Строка чека указана дважды: укажите каждую один раз.",
    bad_return: "Укажите чек для возврата: номер чека или QR-код.",
    drawer_short: "В кассе нет столько наличных. Нужно разрешение управляющего.",
    too_many_parked: "Отложено уже 5 чеков: верните один из них.",
    no_such_parked: "Такого отложенного чека нет: обновите список.",
    basket_not_empty: "Сначала оплатите или отложите текущий чек.",
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
    // Orders for pickup.
    no_such_order: "Заказ не найден: проверьте номер, код или телефон.",
    order_prepaid: "Заказ оплачен онлайн: выдайте его без оплаты.",
    order_paid: "Этот заказ уже оплачен.",
    return_needs_hq: "Нет связи с HQ: чек другого магазина можно вернуть, только когда связь есть.",
    return_elsewhere_loyalty: "Чек другого магазина с картой лояльности подписан без баллов (старый чек): вернуть покупку можно, только когда есть связь с центральным офисом.",
    receipt_forged: "Подпись чека не сходится: чек подделан или изменён. Возврат по нему не принимается.",
    receipt_damaged: "Код чека повреждён: отсканируйте его ещё раз или введите номер чека.",
    receipt_store_unknown: "Касса ещё не знает ключ магазина, продавшего товар: возврат по этому чеку — когда будет связь с HQ.",
    offline_limit_receipt: "Без связи с HQ по чеку другого магазина возвращается не больше лимита на чек.",
    offline_limit_shift: "Без связи с HQ лимит возвратов по чекам других магазинов за смену исчерпан.",
    marked_offline: "Маркированный товар другого магазина возвращается, только когда есть связь с HQ.",
    order_abandoned: "Покупатель отказался от оплаты: заказ отменён. Оформите новый.",
    prepayment_in_points: "Заказ оплачивается наличными или картой, не баллами.",
    order_not_awaiting_payment: "Этот заказ не ждёт оплаты на этой кассе. Оформите новый.",
    order_payment_too_late: "Заказ слишком долго ждал оплаты и будет отменён. Оформите новый.",
    order_final: "Заказ уже завершён (выдан, отменён или истёк): обновите список.",
    order_backwards: "Заказ уже дальше этого шага: обновите список.",
    order_expired: "Срок хранения заказа истёк: товар возвращается в продажу.",
    handover_lines: "Выдача не совпадает со строками заказа: откройте заказ заново.",
    handover_quantity: "Выдать можно от 0 до заказанного количества.",
    handover_nothing: "Покупатель ничего не берёт: отмените заказ.",
    bad_order_step: "Такого действия с заказом нет: обновите страницу.",
    scan_order_code: "Код заказа не прочитан: отсканируйте ещё раз или введите номер заказа.",
    bad_refund_method: "Без чека деньги возвращаются наличными или на карту.",
    order_needs_hq: "Нет связи с HQ: заказ в другой магазин оформить сейчас нельзя. Попробуйте, когда связь вернётся.",
    order_not_available: "В этом магазине столько нет (с учётом заказов): выберите другой магазин или меньше.",
    order_refused: "HQ не принял заказ: проверьте товар и количество.",
    bad_order: "Заказ: от 1 строки, количество больше нуля, срок хранения до 30 дней.",
    count_out_of_scope: "Этот товар не входит в эту инвентаризацию.",
    bad_count_scope: "Инвентаризация — по категориям или по списку товаров, не по обоим сразу.",
    // The shift and the drawer.
    no_shift: "Смена не открыта. Откройте смену (кнопка «Смена»).",
    shift_open: "Смена уже открыта.",
    amount_too_large: "Слишком большая сумма: проверьте ввод.",
    negative_float: "Размен не может быть отрицательным.",
    zero_cash_amount: "Введите сумму внесения или изъятия больше нуля.",
    bad_cash_reason: "Укажите причину: до 200 символов.",
    negative_counted_cash: "Пересчитанная сумма не может быть отрицательной.",
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
    bad_amount: "Неверная сумма: введите число, например 150,50.",
    bad_weight: "Неверный вес: введите килограммы, например 1,5 или 0,250.",
  },
  en: {
    // The scanner and typed codes.
    unknown_barcode: "Item not in the catalog: find it by name or type its PLU.",
    unknown_plu: "No weighed item with that PLU in the catalog: find the item by name.",
    unknown_sku: "No such SKU: check it or find the item by name.",
    no_catalog: "No catalog from HQ yet. Wait for the connection.",
    scan_empty: "The scanner sent an empty code: scan again.",
    scan_too_long: "The scanner sent a code too long: scan again. If it happens again, call the administrator: check the scanner's settings.",
    scan_russian_layout: "The scanner types in the Russian keyboard layout: switch the layout to English and scan again.",
    scan_garbage: "The code came with noise: scan again. If it happens again, call the administrator: check the scanner's settings.",
    scan_not_ascii: "A character no barcode has: scan again. If it happens again, call the administrator: check the scanner's settings.",
    scan_control_byte: "A stray control character in the code: scan again. If it happens again, call the administrator: check the scanner's prefix and suffix.",
    scan_add_on: "The add-on code beside the barcode was read: scan the main barcode.",
    scan_gs1_separators: "The code on the pack was read without its separators: the scanner works as a keyboard. Call the administrator: switch the scanner to USB COM mode.",
    scan_gs1_check_digit: "The code on the pack has an error: scan another barcode on it or find the item by name.",
    scan_gs1_malformed: "The code on the pack cannot be read: scan another barcode on it or find the item by name.",
    scan_check_digit: "The barcode was misread: scan again.",
    scan_digit_count: "A product barcode has 8, 12, 13 or 14 digits: check the code or find the item by name.",
    scan_weighed_template: "The scale label was not recognised: weigh the item again or find it by name and type the weight.",
    scan_zero_weight: "The scale label says zero weight: weigh the item again.",
    scan_no_weight: "The weighed item's label has no weight: weigh it again or find it by name and type the weight.",
    scan_no_gtin: "This code has no product number: scan another barcode on the pack or find the item by name.",
    scan_receipt_code: "The receipt's QR code was not recognised: type the receipt number (the Return button).",
    scan_loyalty_code: "The customer's card was not recognised: type the card or phone number (the Customer button).",
    scan_stray_gs: "The code came with stray separators: scan again. If it happens again, call the administrator: check the scanner's settings.",
    scan_unknown_format: "Not a barcode of an item, a card or a receipt: find the item by name.",
    // Logging in.
    not_logged_in: "Log in first.",
    no_such_user: "No such user.",
    wrong_pin: "Wrong PIN. Try again.",
    locked: "Too many wrong PINs. Login is locked for a few minutes.",
    needs_manager: "A manager must approve: enter their PIN.",
    bad_user_id: "A login is 1 to 32 Latin letters, digits, '-' or '_'.",
    bad_user_name: "A name is 1 to 64 characters.",
    bad_pin_format: "A PIN is 4 to 8 digits.",
    user_exists: "A user with that login exists: choose another login.",
    // The basket.
    quantity: "Invalid quantity: 1 to 100,000 pieces, a weight up to 100 kg.",
    basket_full: "The basket is full. Pay it and start a new one.",
    no_such_line: "No such line. Reload the page.",
    overflow: "The amount is too large: check the quantity and the price.",
    bad_price: "The new price must be above zero and at most the catalog price.",
    bad_discount: "Discount: 1 to 50 % or an amount below the total.",
    bad_coupon: "A coupon code is Latin letters, digits and -, up to 32; at most 8 coupons per basket.",
    duplicate_marking: "This marked item is already in the basket: scan the next unit.",
    marked_quantity: "Marked goods are sold one by one: scan each unit.",
    basket_changed: "The basket changed: check it and pay again.",
    // Paying.
    empty_basket: "The basket is empty: scan an item first.",
    payment_short: "Not enough money. Enter the amount received.",
    card_overpaid: "A card cannot pay more than the total.",
    bad_tender: "Invalid payment amount.",
    change_too_large: "Change over 5,000 ₽: check the cash amount.",
    // Loyalty.
    no_such_customer: "No such customer. Check the card or phone number.",
    points_not_available: "That many points cannot be spent now: spend fewer or pay the rest with money.",
    points_need_customer: "To pay with points, add the customer first (the Customer button).",
    points_step: "Points pay amounts in steps of a point's value: correct the number of points.",
    points_negative: "The number of points cannot be negative.",
    points_over_share: "Points may pay only part of the basket: spend fewer points.",
    points_over_eligible: "Some items in the basket cannot be paid with points: spend fewer points.",
    points_mismatch: "This sale's points do not match its lines: call the administrator.",
    points_account: "The customer's points account refused the operation: call the administrator.",
    bad_card_number: "A card number is 6 to 20 digits: check it.",
    bad_phone: "A phone number is 8 to 15 digits: check it.",
    bad_customer_name: "A customer's name is at most 64 characters.",
    phone_has_card: "This phone already has a card: find the customer by phone.",
    card_numbers_exhausted: "The store has issued all its card numbers: call the administrator.",
    // Returns.
    no_such_sale: "Receipt not found. Check the number.",
    already_cancelled: "This sale is already cancelled.",
    over_return: "Cannot return that many: some were already returned.",
    return_no_such_line: "The receipt has no such line: look the receipt up again.",
    return_quantity: "A quantity to return must be above zero.",
    return_empty: "Choose items and quantities to return.",
    return_duplicate_line: "A line of the receipt is named twice: name each once.",
    bad_return: "Name the receipt to return: its number or QR code.",
    drawer_short: "The drawer does not hold that much cash. A manager must approve.",
    too_many_parked: "Five baskets are parked already: recall one first.",
    no_such_parked: "No such parked basket: refresh the list.",
    basket_not_empty: "Pay or park the basket on the till first.",
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
    // Orders for pickup.
    no_such_order: "No such order: check the number, code or phone.",
    order_prepaid: "This order was paid online: hand it over without payment.",
    order_paid: "This order is paid already.",
    return_needs_hq: "HQ is not reachable: another store's receipt can be returned only while the link is up.",
    return_elsewhere_loyalty: "Another store's receipt with a loyalty card was signed without its points (an older receipt): it is returned only while HQ is reachable.",
    receipt_forged: "The receipt's signature does not match: the receipt is forged or altered. No return on it.",
    receipt_damaged: "The receipt's code is damaged: scan it again or type the receipt number.",
    receipt_store_unknown: "This till does not yet know the selling store's key: return this receipt once HQ is reachable.",
    offline_limit_receipt: "Without HQ, another store's receipt is refunded only up to the limit per receipt.",
    offline_limit_shift: "Without HQ, this shift's limit for other stores' receipts is used up.",
    marked_offline: "Another store's marked goods are returned only while HQ is reachable.",
    order_abandoned: "The customer refused to pay: the order is cancelled. Place a new one.",
    prepayment_in_points: "An order is paid in cash or by card, not in points.",
    order_not_awaiting_payment: "This order does not await a payment at this till. Place a new one.",
    order_payment_too_late: "This order waited too long for its payment and will be cancelled. Place a new one.",
    order_final: "This order has already ended (collected, cancelled or expired): refresh the list.",
    order_backwards: "This order is already past that step: refresh the list.",
    order_expired: "This order's pickup time is over: its goods go back on sale.",
    handover_lines: "The handover does not match the order's lines: open the order again.",
    handover_quantity: "Hand over 0 up to the quantity ordered.",
    handover_nothing: "The customer takes nothing: cancel the order instead.",
    bad_order_step: "No such action on an order: reload the page.",
    scan_order_code: "The order code was misread: scan it again or type the order number.",
    bad_refund_method: "Without a receipt the money goes back in cash or to a card.",
    order_needs_hq: "HQ is not reachable: an order for another store cannot be placed now. Try again once the link is back.",
    order_not_available: "That store does not have that many (counting its orders): choose another store or fewer.",
    order_refused: "HQ did not accept the order: check the item and the quantity.",
    bad_order: "An order: at least one line, quantities above zero, kept up to 30 days.",
    count_out_of_scope: "This item is not among what this count covers.",
    bad_count_scope: "A count covers some categories or a list of items, not both.",
    // The shift and the drawer.
    no_shift: "No shift open. Open one (the Shift button).",
    shift_open: "A shift is already open.",
    amount_too_large: "The amount is too large: check what you typed.",
    negative_float: "The float cannot be negative.",
    zero_cash_amount: "Enter a cash-in or cash-out amount above zero.",
    bad_cash_reason: "Give a reason: up to 200 characters.",
    negative_counted_cash: "The counted cash cannot be negative.",
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
    bad_amount: "Invalid amount: type a number such as 150.50.",
    bad_weight: "Invalid weight: type kilograms, such as 1.5 or 0.250.",
  },
};

// Why the store cannot sync, by the status's `hq.error_code` (`unreachable` needs no
// words beyond "offline"); the store keeps selling either way.
const HQ_TROUBLE = {
  ru: {
    disk_full: "диск кассового сервера заполнен",
    journal: "ошибка журнала кассы",
    not_enrolled: "касса не зарегистрирована в HQ",
    hq_older: "HQ старше кассы: нужно обновить HQ",
    hq_protocol: "HQ не поддерживает версию протокола кассы",
  },
  en: {
    disk_full: "the till server's disk is full",
    journal: "the till's journal failed",
    not_enrolled: "the till is not enrolled with HQ",
    hq_older: "HQ is older than the till: HQ must be upgraded",
    hq_protocol: "HQ does not speak the till's protocol version",
  },
};

let lang = localStorage.getItem("kassa.lang") || "ru";
const t = (k, vars) => {
  let s = (WORDS[lang] && WORDS[lang][k]) || WORDS.ru[k] || k;
  for (const [name, v] of Object.entries(vars || {})) s = s.replace(`{${name}}`, v);
  return s;
};
// A header action's label with its key under it ("Чеки (F5)" shows as "Чеки" over "F5").
function keyed(el, label) {
  const kbd = document.createElement("kbd");
  kbd.textContent = el.dataset.key;
  el.replaceChildren(label.replace(/ \(F\d+\)$/, ""), kbd);
  el.title = `${el.textContent.slice(0, -el.dataset.key.length)} (${el.dataset.key})`;
}
function applyLang() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-t]").forEach((el) => (el.textContent = t(el.dataset.t)));
  document.querySelectorAll("[data-tp]").forEach((el) => (el.placeholder = t(el.dataset.tp)));
  $("btn-lang").textContent = lang === "ru" ? "EN" : "RU";
  document.querySelectorAll("header [data-key]").forEach((el) => keyed(el, el.textContent));
  renderAll();
  showStock();
}

// ---- money ----
// Roubles with a comma and thousands apart ("10 690,00"): a narrow no-break space
// between the groups, so an amount never breaks across lines.
const rub = (k) => {
  const sign = k < 0 ? "-" : "";
  const a = Math.abs(k);
  const whole = String(Math.floor(a / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
  return `${sign}${whole},${String(a % 100).padStart(2, "0")}`;
};
function kopecks(text) {
  const m = String(text).trim().replace(",", ".").match(/^(-?)(\d+)(?:\.(\d{1,2}))?$/);
  if (!m) return null;
  const v = Number(m[2]) * 100 + Number((m[3] || "0").padEnd(2, "0"));
  return m[1] ? -v : v;
}
// A weight typed by the cashier, in grams: kilograms as a scale shows them ("1,5",
// "0.250", "2 кг"), grams with their unit ("250 г"); a whole number above 100 without a
// unit is grams (nothing sold by weight here goes above 100 kg). `null` if not a weight.
function grams(text) {
  const m = String(text).trim().toLowerCase().replace(/\s+/g, "")
    .match(/^(\d{1,6})(?:[.,](\d{1,3}))?(кг|kg|г|g)?$/);
  if (!m) return null;
  const [, whole, frac, unit] = m;
  if (unit === "г" || unit === "g") return frac === undefined ? Number(whole) : null;
  const kg = Number(whole) * 1000 + Number((frac || "").padEnd(3, "0"));
  if (unit || frac !== undefined) return kg;
  return Number(whole) > 100 ? Number(whole) : kg;
}
// Quantities are pieces, or grams when the unit is "kg".
const isWeighed = (x) => x.unit === "kg";
// A weight in kilograms with a comma (as the scale and the cashier write it), its unit
// in the page's language.
const quantityText = (x, q) => (isWeighed(x) ? `${(q / 1000).toFixed(3).replace(".", ",")} ${t("kg")}` : `${q}`);
// A VAT rate's code: "20", "10", "0" or "none".
const vatRate = (code) => (code === "none" ? t("no_vat") : `${code}%`);
// How a refund went back, by its tender's code; a code this page does not know is shown
// as it is, never taken for cash.
const REFUND_WAYS = { cash: "cash", card: "card", points: "points_refund" };
const refundWay = (kind) => (REFUND_WAYS[kind] ? t(REFUND_WAYS[kind]) : kind);
const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);

// ---- state ----
const state = { token: sessionStorage.getItem("kassa.token"), user: null, basket: { lines: [] }, totals: null, shift: null, status: null };

// The message under the pay buttons: a refusal (its code kept, so that it goes once
// what it complained about is fixed), a confirmation, or a sale's change (large, until
// the next scan).
function show(text, kind, code) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
  m.dataset.code = code || "";
}
function showError(code, message) {
  show((ERRORS[lang] && ERRORS[lang][code]) || message || code, "error", code);
}
function showPaid(sale) {
  const m = $("message");
  const head = document.createElement("div");
  head.textContent = t("receipt_paid", { r: sale.receipt_no, t: rub(sale.total_kopecks) });
  const change = document.createElement("div");
  change.id = "change";
  change.textContent = t("change_due", { c: rub(sale.change_kopecks) });
  m.replaceChildren(head, change);
  m.className = "ok paid";
  m.dataset.code = "";
  m.dataset.change = sale.change_kopecks;
}
// Refusals that go by themselves once the state they complained about is fixed.
const FIXED_WHEN = {
  no_shift: () => !!state.shift,
  shift_open: () => !state.shift,
  empty_basket: () => state.basket.lines.length > 0,
  points_need_customer: () => !!state.customer,
  no_such_customer: () => !!state.customer,
  no_catalog: () => !!(state.status && state.status.hq.online),
  network: () => true,
};
function clearFixed() {
  const m = $("message");
  const fixed = m.className === "error" && FIXED_WHEN[m.dataset.code];
  if (fixed && fixed()) show("", "");
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { ...(body ? { "content-type": "application/json" } : {}), ...(state.token ? { authorization: `Bearer ${state.token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    showError("network");
    throw e;
  }
  const data = await res.json().catch(() => ({ error: "internal" }));
  if (!res.ok) {
    if (data.error === "not_logged_in") showLogin();
    const err = new Error(data.error);
    err.code = data.error;
    err.message2 = data.message;
    throw err;
  }
  return data;
}
// Runs an action; a refusal is shown in words and swallowed.
async function act(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.code) showError(e.code, e.message2);
    return null;
  }
}

// ---- dialogs ----
// A button's words without its shortcut, for the dialog it opens ("Скидка (F4)" → "Скидка").
const plain = (key) => t(key).replace(/ \(F\d+\)$/, "");
// Asks for `fields` ([{name, label, type, value}]); resolves to the values or null.
function ask(title, fields, extra) {
  const dlg = $("dlg");
  const form = $("dlg-form");
  form.replaceChildren();
  const h = document.createElement("strong");
  h.textContent = title;
  form.appendChild(h);
  if (extra) form.appendChild(extra);
  for (const f of fields) {
    const label = document.createElement("label");
    label.textContent = f.label;
    const input = document.createElement(f.type === "select" ? "select" : "input");
    input.name = f.name;
    input.id = `dlg-${f.name}`;
    if (f.type === "select") {
      for (const [v, text] of f.options) {
        const o = document.createElement("option");
        o.value = v;
        o.textContent = text;
        input.appendChild(o);
      }
    } else {
      input.type = f.type || "text";
      if (f.type === "password") input.inputMode = "numeric";
    }
    if (f.value !== undefined) input.value = f.value;
    label.appendChild(document.createElement("br"));
    label.appendChild(input);
    form.appendChild(label);
  }
  const row = document.createElement("div");
  row.className = "row";
  const ok = document.createElement("button");
  ok.value = "ok";
  ok.className = "primary";
  ok.id = "dlg-ok";
  ok.textContent = t("ok");
  const cancel = document.createElement("button");
  cancel.value = "cancel";
  cancel.textContent = t("cancel");
  row.append(ok, cancel);
  form.appendChild(row);
  return new Promise((resolve) => {
    dlg.onclose = () => {
      if (dlg.returnValue !== "ok") return resolve(null);
      const values = {};
      for (const f of fields) values[f.name] = form.elements[f.name].value;
      resolve(values);
    };
    dlg.returnValue = "";
    dlg.showModal();
    const first = form.querySelector("input, select");
    if (first) first.focus();
  });
}

// Fields asking for a manager's approval, unless the cashier is one.
function managerFields() {
  if (state.user && state.user.role === "manager") return [];
  const managers = (state.users || []).filter((u) => u.role === "manager").map((u) => [u.id, u.name]);
  return [
    { name: "manager_user", label: t("manager"), type: "select", options: managers },
    { name: "manager_pin", label: t("manager_pin"), type: "password" },
  ];
}
// A manager's approval only when their PIN was typed (an empty field asks for nothing).
const approval = (v) => (v.manager_user && v.manager_pin ? { user: v.manager_user, pin: v.manager_pin } : undefined);

// ---- rendering ----
function renderBasket() {
  const body = $("basket");
  body.replaceChildren();
  // The park key parks a basket, or lists the parked ones when the till is empty.
  $("park").dataset.t = state.basket.lines.length ? "park" : "parked_key";
  $("park").textContent = t($("park").dataset.t);
  state.basket.lines.forEach((l, i) => {
    const tr = document.createElement("tr");
    const qty = quantityText(l, l.quantity);
    const perKg = isWeighed(l) ? `/${t("kg")}` : "";
    // Figures as parts that never break inside; the list price or the discount may go
    // under the figure on a narrow screen.
    const price = l.price_kopecks !== l.list_price_kopecks
      ? [`${rub(l.price_kopecks)}${perKg}`, `(${rub(l.list_price_kopecks)})`]
      : [`${rub(l.price_kopecks)}${perKg}`];
    const amount = l.discount_kopecks
      ? [rub(l.amount_kopecks - l.discount_kopecks), `(−${rub(l.discount_kopecks)})`]
      : [rub(l.amount_kopecks)];
    for (const [text, cls] of [[i + 1, ""], [l.name, "name"], [[qty], "num q"], [price, "num"], [amount, "num"]]) {
      const td = document.createElement("td");
      if (Array.isArray(text)) {
        text.forEach((part, k) => {
          const span = document.createElement("span");
          span.className = "fig";
          span.textContent = part;
          if (k > 0) td.append(" ");
          td.appendChild(span);
        });
      } else {
        td.textContent = text;
      }
      if (cls === "num q") {
        // The quantity is a button: typed directly (pieces, or kilograms with a comma).
        td.replaceChildren();
        const b = document.createElement("button");
        b.className = "qty fig";
        b.textContent = qty;
        b.title = t("change_qty");
        b.onclick = () => editQuantity(i, l);
        td.appendChild(b);
      }
      if (cls === "name") {
        // Each promotion under the item, with what it took off.
        for (const p of l.promotions) {
          const span = document.createElement("span");
          span.className = "promo";
          span.textContent = `${t("promo")}: ${p.name} −${rub(p.amount_kopecks)}`;
          td.appendChild(span);
        }
      } else if (cls) {
        td.className = cls;
      }
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    td.className = "actions";
    const button = (label, title, fn) => {
      const b = document.createElement("button");
      b.className = "small";
      b.textContent = label;
      b.title = title;
      b.setAttribute("aria-label", title);
      b.onclick = fn;
      td.appendChild(b);
      return b;
    };
    if (!isWeighed(l)) {
      button("−", t("change_qty"), () => setQuantity(i, l.quantity - 1));
      button("+", t("change_qty"), () => setQuantity(i, l.quantity + 1));
    }
    button("₽", t("new_price"), () => overridePrice(i, l));
    const remove = button("✕", t("remove_line"), () => act(() => api("POST", `/api/basket/lines/${i}/remove`, { idempotency_key: newKey() })));
    remove.classList.add("remove");
    tr.appendChild(td);
    body.appendChild(tr);
  });
  const tot = state.totals;
  $("total").textContent = rub(tot ? tot.total_kopecks : 0);
  const saved = state.basket.promotions_saved_kopecks || 0;
  $("saved").textContent = saved > 0 ? `${t("saved")}: ${rub(saved)}` : "";
  $("vat").textContent = tot
    ? tot.vat.filter((v) => v.vat_kopecks !== 0).map((v) => `${t("vat")} ${vatRate(v.rate)}: ${rub(v.vat_kopecks)}`).join(" · ")
    : "";
  $("lines").scrollTop = $("lines").scrollHeight;
}

function renderCustomer() {
  const c = state.customer;
  // What limits the offer, in the cashier's language (the API's `message` is English).
  const why = c && c.limit && c.limit !== "none" ? ` — ${t(`offer_${c.limit}`, { p: c.max_share_percent })}` : "";
  $("customer-info").textContent = c
    ? `${c.name || c.card}: ${c.balance} ${t("balance")}, ${t("spendable")} ${c.spendable_now}${why}`
    : "";
}

function renderShift() {
  const s = state.shift;
  $("shift-state").textContent = s ? `${t("shift_open")} ${s.shift} · ${t("sales")}: ${s.sales_count}` : t("no_shift");
}

function renderStatus() {
  const s = state.status;
  if (!s) return;
  $("hq-dot").className = s.hq.online ? "dot on" : "dot";
  const code = s.hq.error_code;
  const trouble = code && code !== "unreachable" ? ` (${(HQ_TROUBLE[lang] || HQ_TROUBLE.ru)[code] || s.hq.last_error || code})` : "";
  $("hq").textContent = `${s.hq.online ? t("hq_on") : t("hq_off")}${trouble}${s.hq.backlog ? `, ${t("backlog")} ${s.hq.backlog}` : ""}`;
  const dev = (name, d) => {
    if (!d.configured) return `${name}: —`;
    const words = d.words ? d.words[lang] || d.words.ru : d.detail;
    return `${name}: ${t(`st_${d.state}`)}${words ? ` (${words})` : ""}`;
  };
  $("scanner").textContent = dev(t("scanner"), s.scanner);
  $("printer").textContent = dev(t("printer"), s.printer);
  renderAlert();
  clearFixed();
}

// Device trouble where the cashier looks, in words, with what to do. The printer's
// condition comes as words from the agent (the same words in every release: its
// English ones are matched here to choose the advice).
function deviceAlerts(s) {
  const alerts = [];
  const p = s.printer;
  if (p.configured && (p.state === "error" || p.state === "closed")) {
    const en = (p.words && p.words.en) || p.detail || "";
    const words = p.words ? p.words[lang] || p.words.ru : p.detail || t("st_error");
    if (/paper out/i.test(en)) alerts.push(t("alert_paper_out"));
    else if (/cover open/i.test(en)) alerts.push(t("alert_cover_open"));
    else if (p.state === "closed" || /not responding|offline/i.test(en)) alerts.push(t("alert_printer_gone"));
    else alerts.push(t("alert_printer_other", { w: words }));
  }
  const sc = s.scanner;
  if (sc.configured && (sc.state === "error" || sc.state === "closed")) alerts.push(t("alert_scanner_gone"));
  return alerts;
}
function renderAlert() {
  const alerts = state.status && state.token ? deviceAlerts(state.status) : [];
  const el = $("alert");
  el.replaceChildren(...alerts.map((a) => {
    const d = document.createElement("div");
    d.textContent = a;
    return d;
  }));
  el.classList.toggle("hidden", alerts.length === 0);
}

function renderAll() {
  renderBasket();
  renderShift();
  renderStatus();
  $("who").textContent = state.user ? state.user.name : "";
}

async function showStock() {
  const last = state.basket.lines[state.basket.lines.length - 1];
  if (!last || !state.token) return ($("stock").textContent = "");
  const basket = state.basket;
  const s = await api("GET", `/api/stock/${encodeURIComponent(last.sku)}`).catch(() => null);
  // A basket that changed meanwhile (paid, voided) has asked for its own answer.
  if (!s || state.basket !== basket) return;
  let text = `${last.name}: ${t("stock")} ${quantityText(last, s.quantity)}`;
  if (s.reserved > 0) text += ` (${t("stock_reserved")} ${quantityText(last, s.reserved)})`;
  // A walk-in sale may take stock held for orders, never silently.
  const inBasket = state.basket.lines.filter((l) => l.sku === last.sku).reduce((n, l) => n + l.quantity, 0);
  if (s.reserved > 0 && inBasket > s.available) {
    show(t("reserved_short", { name: last.name, r: quantityText(last, s.reserved), a: quantityText(last, Math.max(s.available, 0)) }), "error", "reserved_short");
  }
  for (const n of s.nearby || []) {
    const age = n.age_ms === null ? "" : ` (${Math.round(n.age_ms / 60000)} min)`;
    text += ` · #${n.store}: ${quantityText(last, n.quantity)}${age}`;
  }
  $("stock").textContent = text;
  // The endless aisle: what is not here (or not enough) can be ordered for pickup here
  // or where it is — HQ places it, so the till must be online.
  const elsewhere = (s.nearby || []).filter((n) => n.quantity > 0);
  if (elsewhere.length || s.available < inBasket) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = "order-elsewhere";
    b.className = "small";
    b.textContent = t("order_elsewhere");
    b.onclick = () => aisleDialog(last, s);
    $("stock").append(" ", b);
  }
}

// Orders `line`'s item for pickup at a store that has it (or here, to come later).
async function aisleDialog(line, s) {
  const stores = [[String(state.store), t("this_store", { n: state.store })]];
  for (const n of s.nearby || []) if (n.quantity > 0) stores.push([String(n.store), `№ ${n.store}: ${quantityText(line, n.quantity)}`]);
  const v = await ask(t("order_elsewhere"), [
    { name: "store", label: t("pickup_store"), type: "select", options: stores },
    { name: "quantity", label: t("qty"), value: isWeighed(line) ? quantityText(line, line.quantity) : String(line.quantity) },
    { name: "phone", label: t("customer_phone") },
    { name: "note", label: t("order_note") },
    { name: "payment", label: t("order_pay_by"), type: "select", options: [["at_pickup", t("at_pickup")], ["now", t("pay_now")]] },
  ]);
  if (!v) return;
  const quantity = isWeighed(line) ? grams(v.quantity) : /^\d+$/.test(v.quantity.trim()) ? Number(v.quantity.trim()) : null;
  if (!quantity) return showError("quantity");
  const body = { store: Number(v.store), lines: [{ code: line.sku, quantity }], phone: v.phone || null, note: v.note, payment: v.payment };
  const r = await act(() => api("POST", "/api/orders/aisle", body));
  if (!r) return;
  if (r.payment !== "prepaid") return show(t("aisle_placed", { n: r.id, s: r.store, c: r.code, t: rub(r.total_kopecks) }), "ok");
  await aislePay(r);
}

// Takes the money for an order HQ placed to be paid now; closing the dialog means the
// customer does not pay, and HQ cancels the order.
// A payment that fails (too little cash, say) asks again.
async function aislePay(r) {
  for (;;) {
    const p = await ask(t("aisle_pay_title", { n: r.id, t: rub(r.total_kopecks) }), [
      { name: "method", label: t("order_pay_by"), type: "select", options: [["cash", t("cash")], ["card", t("card")]] },
      { name: "cash", label: t("cash_given"), value: rub(r.total_kopecks) },
    ]);
    if (!p) {
      if (await act(() => api("POST", `/api/orders/aisle/${r.id}/abandon`, {}))) show(t("aisle_abandoned", { n: r.id }), "ok");
      return;
    }
    const pay = { pay: p.method, idempotency_key: newKey() };
    const cash = p.method === "cash" ? kopecks(p.cash) : null;
    if (p.method === "cash" && cash === null) {
      showError("bad_tender");
      continue;
    }
    if (cash !== null) pay.cash_kopecks = cash;
    try {
      const done = await api("POST", `/api/orders/aisle/${r.id}/pay`, pay);
      return show(t("aisle_paid", { n: r.id, r: done.receipt, s: r.store, c: r.code, ch: rub(done.change_kopecks) }), "ok");
    } catch (e) {
      if (e.code) showError(e.code, e.message2);
      // Asked again only where another try can succeed (the amount, the shift).
      if (!["payment_short", "bad_tender", "change_too_large", "no_shift", "card_overpaid"].includes(e.code)) return;
    }
  }
}

// ---- actions ----
async function editQuantity(i, line) {
  const weighed = isWeighed(line);
  const v = await ask(t("change_qty"), [
    { name: "quantity", label: weighed ? t("weight_kg") : t("qty"), value: weighed ? quantityText(line, line.quantity).split(" ")[0] : String(line.quantity) },
  ]);
  if (!v) return;
  const q = weighed ? grams(v.quantity) : /^\d+$/.test(v.quantity.trim()) ? Number(v.quantity.trim()) : null;
  if (!q) return showError("quantity");
  return setQuantity(i, q);
}
const setQuantity = (i, q) =>
  q > 0 && act(() => api("POST", `/api/basket/lines/${i}/quantity`, { quantity: q, idempotency_key: newKey() }));

async function overridePrice(i, line) {
  const v = await ask(t("new_price"), [{ name: "price", label: t("new_price"), value: rub(line.price_kopecks) }, ...managerFields()]);
  if (!v) return;
  const price = kopecks(v.price);
  if (price === null) return showError("bad_price");
  await act(() => api("POST", `/api/basket/lines/${i}/price`, { price_kopecks: price, manager: approval(v), idempotency_key: newKey() }));
}

// One payment at a time: the pay buttons are disabled while it is in flight, and the
// second click of a burst (a double-click, F9 pressed twice) neither pays again nor
// replaces the change with "empty basket".
const PAY_BUTTONS = ["pay-cash", "pay-card", "pay-mixed", "pay-points"];
let paying = false;
let lastPaid = null;
/// How long after a sale a refusal of its own basket is taken for the same click burst.
const BURST_MS = 3000;
function setPaying(on) {
  paying = on;
  for (const id of PAY_BUTTONS) $(id).disabled = on;
}
async function submitPayment(tenders) {
  const basketId = state.basket.id;
  if (paying) return null;
  // This basket is paid; its successor is on its way.
  if (lastPaid && lastPaid.basketId === basketId && basketId !== undefined) return null;
  setPaying(true);
  try {
    const data = await api("POST", "/api/pay", { idempotency_key: newKey(), tenders, basket_id: basketId });
    lastPaid = { basketId, at: Date.now() };
    $("cash").value = "";
    showPaid(data.sale);
    return data;
  } catch (e) {
    const burst = lastPaid && Date.now() - lastPaid.at < BURST_MS && $("message").classList.contains("paid");
    if (burst && (e.code === "empty_basket" || e.code === "basket_changed")) return null;
    if (e.code) showError(e.code, e.message2);
    return null;
  } finally {
    setPaying(false);
  }
}

async function pay(kind) {
  if (paying) return;
  const total = state.totals ? state.totals.total_kopecks : 0;
  let tenders;
  if (kind === "mixed") {
    const v = await ask(t("pay_mixed"), [
      { name: "card", label: t("card_amount"), value: "" },
      { name: "cash", label: t("cash_amount"), value: "" },
    ]);
    if (!v) return;
    const card = kopecks(v.card || "0");
    const cash = kopecks(v.cash || "0");
    if (card === null || cash === null) return showError("bad_tender");
    tenders = [];
    if (card > 0) tenders.push({ kind: "card", amount_kopecks: card });
    if (cash > 0) tenders.push({ kind: "cash", amount_kopecks: cash });
  } else if (kind === "cash" && $("cash").value.trim() !== "") {
    const amount = kopecks($("cash").value);
    if (amount === null) return showError("bad_tender");
    tenders = [{ kind, amount_kopecks: amount }];
  } else {
    tenders = [{ kind, amount_kopecks: total }];
  }
  await submitPayment(tenders);
}

async function enterCode(code) {
  $("results").replaceChildren();
  if (/^\d{6,}$/.test(code)) {
    if (await act(() => api("POST", "/api/basket/scan", { code, idempotency_key: newKey() }))) show("", "");
    return;
  }
  const data = await act(() => api("GET", `/api/catalog/search?q=${encodeURIComponent(code)}`));
  if (!data) return;
  for (const item of data.items) {
    const b = document.createElement("button");
    b.textContent = `${item.name} — ${rub(item.price_kopecks)}${isWeighed(item) ? `/${t("kg")}` : ""}`;
    b.onclick = async () => {
      let quantity = 1;
      if (isWeighed(item)) {
        const v = await ask(item.name, [{ name: "grams", label: t("weight_kg"), value: "1,000" }]);
        if (!v) return;
        quantity = grams(v.grams);
        if (quantity === null) return showError("bad_weight");
      }
      $("results").replaceChildren();
      await act(() => api("POST", "/api/basket/items", { sku: item.sku, quantity, idempotency_key: newKey() }));
    };
    $("results").appendChild(b);
  }
}

async function coupon() {
  const v = await ask(plain("coupon"), [{ name: "code", label: t("coupon_code") }]);
  if (!v) return;
  await act(() => api("POST", "/api/basket/coupons", { code: v.code, idempotency_key: newKey() }));
}

async function discount() {
  const v = await ask(plain("discount"), [{ name: "percent", label: t("percent"), value: "10" }, ...managerFields()]);
  if (!v) return;
  await act(() => api("POST", "/api/basket/discount", { percent: Number(v.percent), manager: approval(v), idempotency_key: newKey() }));
}

// Sends a cash refund or cash-out; if the drawer's figures hold less, asks for a
// manager's approval and sends it again as an override (a new request, a new key).
async function withDrawerOverride(send) {
  try {
    return await send({});
  } catch (e) {
    if (e.code !== "drawer_short") {
      if (e.code) showError(e.code, e.message2);
      return null;
    }
    const info = document.createElement("div");
    info.textContent = e.message2 || "";
    const v = await ask(t("drawer_override"), managerFields(), info);
    if (!v) return null;
    return act(() => send({ drawer_override: true, manager: approval(v) }));
  }
}

async function shiftDialog() {
  if (!state.shift) {
    const v = await ask(t("open_shift"), [{ name: "float", label: t("float"), value: "0" }]);
    if (!v) return;
    const amount = kopecks(v.float);
    if (amount === null) return showError("bad_amount");
    const data = await act(() => api("POST", "/api/shift/open", { float_kopecks: amount, idempotency_key: newKey() }));
    if (data && data.report) show(t("shift_opened", { s: data.report.shift, f: rub(data.report.float_kopecks) }), "ok");
    return;
  }
  const s = state.shift;
  const info = document.createElement("div");
  info.id = "shift-info";
  info.textContent = `${t("sales")}: ${s.sales_count} / ${rub(s.sales_total_kopecks)} · ${t("refunds")}: ${s.returns_count} / ${rub(s.returns_total_kopecks)} · ${t("expected")}: ${rub(s.expected_cash_kopecks)}`;
  const v = await ask(t("shift"), [
    { name: "action", label: t("shift"), type: "select", options: [["x", t("x_report")], ["in", t("cash_in")], ["out", t("cash_out")], ["close", t("close_shift")]] },
    { name: "amount", label: `${t("amount")} / ${t("counted")}`, value: "" },
    { name: "reason", label: t("reason"), value: "" },
    ...managerFields(),
  ], info);
  if (!v) return;
  if (v.action === "x") {
    if (await act(() => api("POST", "/api/shift/x-report", { idempotency_key: newKey() }))) show(t("x_report"), "ok");
    return;
  }
  const amount = kopecks(v.amount);
  if (amount === null) return showError("bad_amount");
  if (v.action === "close") {
    const data = await act(() => api("POST", "/api/shift/close", { counted_kopecks: amount, manager: approval(v), idempotency_key: newKey() }));
    if (data) show(t("z_done", { d: rub(data.report.difference_kopecks) }), "ok");
    return;
  }
  const signed = v.action === "out" ? -amount : amount;
  // Cash out needs the manager's PIN typed in the same dialog (the store's limits).
  const data = await withDrawerOverride((extra) => api("POST", "/api/shift/cash", { amount_kopecks: signed, reason: v.reason, manager: approval(v), ...extra, idempotency_key: newKey() }));
  if (data && data.report) {
    const words = v.action === "out" ? "cash_out_done" : "cash_in_done";
    show(t(words, { a: rub(amount), e: rub(data.report.expected_cash_kopecks) }), "ok");
  }
}

async function returnDialog(code) {
  const v = await ask(t("returns"), [
    { name: "mode", label: t("returns"), type: "select", options: [["receipt", t("receipt_code")], ["cancel", t("cancel_sale")], ["none", t("no_receipt")]] },
    { name: "code", label: `${t("receipt_code")} / ${t("sku")}`, value: typeof code === "string" ? code : "" },
    { name: "qty", label: t("qty"), value: "1" },
    // With no receipt there is no payment to follow: the customer chooses.
    { name: "refund", label: t("refund_method"), type: "select", options: [["cash", t("cash")], ["card", t("card")]] },
    ...managerFields(),
  ]);
  if (!v) return;
  const done = (data) => {
    if (!data) return;
    const r = data.return;
    const how = r.refunds.map((x) => `${rub(x.amount_kopecks)} ${refundWay(x.kind)}`).join(", ");
    show(t("returned", { r: r.receipt_no, t: rub(r.total_kopecks), how }), "ok");
  };
  if (v.mode === "none") {
    const lines = [{ sku: v.code.trim(), quantity: Number(v.qty) }];
    done(await withDrawerOverride((extra) => api("POST", "/api/returns/without-receipt", { lines, refund: v.refund, manager: approval(v), ...extra, idempotency_key: newKey() })));
    return;
  }
  const found = await act(() => api("GET", `/api/sales/lookup?code=${encodeURIComponent(v.code.trim())}`));
  if (!found) return;
  if (v.mode === "cancel") {
    done(await withDrawerOverride((extra) => api("POST", `/api/sales/${found.sale.id.seq}/cancel`, { manager: approval(v), ...extra, idempotency_key: newKey() })));
    return;
  }
  const fields = found.sale.lines
    .map((l, i) => ({ name: `l${i}`, label: `${l.name} (${t("left")}: ${quantityText(l, found.returnable[i])})`, value: "0", left: found.returnable[i] }))
    .filter((f) => f.left > 0);
  const offline = found.offline ? `; ${t("offline_left", { r: rub(found.offline.receipt_left_kopecks), s: rub(found.offline.shift_left_kopecks) })}` : "";
  // Store 0 is the online shop: a prepaid order's purchase, by the order's number.
  const seller = found.sale.id.store === 0 ? t("sold_online", { n: found.sale.id.seq }) : t("sold_at", { n: found.sale.id.store });
  const where = found.elsewhere ? ` (${seller}${offline})` : "";
  const q = await ask(`${t("returns")} ${found.sale.receipt_no}${where}`, fields);
  if (!q) return;
  // A weighed line's quantity is typed in kilograms with a comma, like the left shown.
  const typed = (f) => (isWeighed(found.sale.lines[Number(f.name.slice(1))]) ? grams(q[f.name]) || 0 : Number(q[f.name]));
  const lines = fields.map((f) => ({ line: Number(f.name.slice(1)), quantity: typed(f) })).filter((l) => l.quantity > 0);
  // Another store's receipt is named by its code (HQ knows its sale); this store's by its document.
  const which = found.elsewhere ? { code: v.code.trim() } : { sale_seq: found.sale.id.seq };
  done(await withDrawerOverride((extra) => api("POST", "/api/returns", { ...which, lines, ...extra, idempotency_key: newKey() })));
}

// Parked baskets: set one aside for the next customer, and recall it from the list.
async function parkedDialog() {
  const data = await act(() => api("GET", "/api/basket/parked"));
  if (!data) return;
  const table = document.createElement("table");
  table.id = "parked";
  for (const p of data.parked) {
    const tr = document.createElement("tr");
    const when = new Date(p.parked_at_ms).toLocaleTimeString(lang === "ru" ? "ru-RU" : "en-GB", { hour: "2-digit", minute: "2-digit" });
    for (const text of [when, p.first_item || "", `${p.lines} × `, rub(p.total_kopecks)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "small recall";
    b.textContent = t("recall");
    b.onclick = () => {
      $("dlg").close("cancel");
      act(() => api("POST", `/api/basket/parked/${p.slot}/recall`, { idempotency_key: newKey() }));
    };
    td.appendChild(b);
    tr.appendChild(td);
    table.appendChild(tr);
  }
  if (!data.parked.length) table.textContent = t("no_parked");
  await ask(t("parked"), [], table);
}

// This terminal's receipts of the shift: a reprint or a return from the list.
// The customer on the basket: what they bought and ordered — from HQ, every store and
// channel; with HQ out of reach, this store's own records, and the dialog says so.
async function historyDialog() {
  const c = state.customer;
  if (!c) return showError("no_such_customer");
  const h = await act(() => api("GET", `/api/customer/history?code=${encodeURIComponent(c.card)}`));
  if (!h) return;
  const box = document.createElement("div");
  box.id = "history";
  const note = document.createElement("p");
  note.id = "history-source";
  note.className = h.from_hq ? "" : "warn";
  note.textContent = h.from_hq ? t("history_hq") : t("history_local");
  box.appendChild(note);
  const day = (ms) => new Date(ms).toLocaleDateString(lang === "ru" ? "ru-RU" : "en-GB");
  const table = (id, title, rows) => {
    if (!rows.length) return;
    const head = document.createElement("h3");
    head.textContent = title;
    const tbl = document.createElement("table");
    tbl.id = id;
    for (const cells of rows) {
      const tr = document.createElement("tr");
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      tbl.appendChild(tr);
    }
    box.append(head, tbl);
  };
  table("history-purchases", t("history_purchases"), h.purchases.map((p) => [
    day(p.created_at_ms), t("store_n", { n: p.store }), p.receipt_no,
    p.kind === "sale" ? t("sale_word") : t("return_word"), rub(p.total_kopecks),
  ]));
  table("history-orders", t("history_orders"), h.orders.map((o) => [
    day(o.created_at_ms), `№ ${o.id}`, t(o.channel === "online" ? "channel_online" : "channel_till"),
    t("store_n", { n: o.store }), t(`order_${o.state}`), rub(o.total_kopecks),
  ]));
  if (!h.purchases.length && !h.orders.length) box.append(t("no_history"));
  await ask(t("history_title", { c: h.name || h.card }), [], box);
}

async function receiptsDialog() {
  const data = await act(() => api("GET", "/api/sales/shift"));
  if (!data) return;
  const table = document.createElement("table");
  table.id = "receipts";
  for (const d of data.docs) {
    const tr = document.createElement("tr");
    const when = new Date(d.at_ms).toLocaleTimeString(lang === "ru" ? "ru-RU" : "en-GB", { hour: "2-digit", minute: "2-digit" });
    for (const text of [d.receipt_no, when, d.kind === "sale" ? t("sale_word") : t("return_word"), rub(d.total_kopecks)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const actions = document.createElement("td");
    const reprint = document.createElement("button");
    reprint.type = "button";
    reprint.className = "small reprint";
    reprint.textContent = t("reprint");
    reprint.onclick = () => act(() => api("POST", `/api/sales/${d.seq}/reprint`)).then((r) => r && show(t("reprinted", { r: d.receipt_no }), "ok"));
    actions.appendChild(reprint);
    if (d.kind === "sale") {
      const ret = document.createElement("button");
      ret.type = "button";
      ret.className = "small return";
      ret.textContent = t("returns");
      // The list's dialog closes first (its close event settles it), then the return's
      // opens in the same place.
      ret.onclick = () => {
        const dlg = $("dlg");
        dlg.addEventListener("close", () => setTimeout(() => returnDialog(d.receipt_no)), { once: true });
        dlg.close("cancel");
      };
      actions.appendChild(ret);
    }
    tr.appendChild(actions);
    table.appendChild(tr);
  }
  if (!data.docs.length) table.textContent = t("no_receipts");
  await ask(t("receipts"), [], table);
}

// ---- orders for pickup ----
// The Orders view: the open orders and what ended today, overdue ones highlighted, each
// moved on by its button; the handover dialog takes what the customer takes of each
// line and, for an order paid at pickup, the payment. The list refreshes every few
// seconds, and the header's button shows how many orders are open.
const ORDER_STATES = ["new", "accepted", "picking", "ready", "collected", "expired", "cancelled"];
const orderState = (s) => (ORDER_STATES.includes(s) ? t(`order_${s}`) : s);
const ORDERS_POLL_MS = 4000;
let ordersTimer = null;
function renderOrdersBadge(data) {
  const b = $("btn-orders");
  const label = plain("orders");
  keyed(b, data && data.open ? `${label} · ${data.open}` : label);
  b.classList.toggle("overdue", !!(data && data.overdue));
}
async function pollOrders() {
  clearTimeout(ordersTimer);
  if (!state.token) return;
  const data = await api("GET", "/api/orders").catch(() => null);
  if (data) {
    state.orders = data;
    renderOrdersBadge(data);
    if ($("orders-list")) renderOrdersTable($("orders-list"), data.orders);
  }
  ordersTimer = setTimeout(pollOrders, ORDERS_POLL_MS);
}
const when = (ms) =>
  new Date(ms).toLocaleString(lang === "ru" ? "ru-RU" : "en-GB", { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
function orderButton(text, cls, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `small ${cls}`;
  b.textContent = text;
  b.onclick = onclick;
  return b;
}
// Closes the dialog open now, then runs `next` (another dialog opens in its place).
function thenDialog(next) {
  const dlg = $("dlg");
  dlg.addEventListener("close", () => setTimeout(next), { once: true });
  dlg.close("cancel");
}
async function orderStep(o, step) {
  const r = await act(() => api("POST", `/api/orders/${o.id}/${step}`));
  if (r) show(t("order_moved", { n: o.id, s: orderState(r.state) }), "ok");
  pollOrders();
}
function renderOrdersTable(table, orders) {
  table.replaceChildren();
  if (!orders.length) {
    table.textContent = t("no_orders");
    return;
  }
  for (const o of orders) {
    const tr = document.createElement("tr");
    tr.dataset.order = o.id;
    tr.className = `order state-${o.state}${o.overdue ? " overdue" : ""}`;
    const who = [o.note, o.phone].filter(Boolean).join(", ");
    const cells = [`№ ${o.id}`, orderState(o.state) + (o.overdue ? ` · ${t("overdue")}` : ""), who, `${rub(o.total_kopecks)} ₽`, o.payment === "prepaid" ? t("prepaid") : t("at_pickup"), `${t("until")} ${when(o.expires_at_ms)}`];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const actions = document.createElement("td");
    actions.className = "actions";
    if (o.state === "accepted" || o.state === "new") actions.appendChild(orderButton(t("order_pick"), "pick", () => orderStep(o, "picking")));
    if (o.state === "accepted" || o.state === "picking") actions.appendChild(orderButton(t("order_ready_btn"), "ready", () => orderStep(o, "ready")));
    if (["accepted", "picking", "ready"].includes(o.state)) {
      actions.appendChild(orderButton(t("order_hand_over"), "hand-over", () => thenDialog(() => handOverDialog(o.id))));
      actions.appendChild(orderButton(t("order_print"), "print", () => orderStep(o, "print")));
      actions.appendChild(orderButton(t("order_cancel"), "remove cancel-order", () => orderStep(o, "cancel")));
    }
    tr.appendChild(actions);
    table.appendChild(tr);
  }
}
async function ordersDialog() {
  const data = await act(() => api("GET", "/api/orders"));
  if (!data) return;
  renderOrdersBadge(data);
  const box = document.createElement("div");
  const find = document.createElement("input");
  find.id = "order-find";
  find.placeholder = t("order_find_ph");
  find.autocomplete = "off";
  find.onkeydown = (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    const code = find.value.trim();
    if (!code) return;
    act(() => api("GET", `/api/orders/find?code=${encodeURIComponent(code)}`)).then((r) => {
      if (r && r.orders.length) thenDialog(() => handOverDialog(r.orders[0].id));
    });
  };
  const table = document.createElement("table");
  table.id = "orders-list";
  renderOrdersTable(table, data.orders);
  box.append(find, table);
  await ask(t("orders"), [], box);
}
// One order: its lines with what the customer takes of each (all, unless changed), and
// for an order paid at pickup, how it is paid.
async function handOverDialog(id) {
  const o = await act(() => api("GET", `/api/orders/${id}`));
  if (!o) return;
  const box = document.createElement("div");
  box.id = "order-detail";
  const head = document.createElement("div");
  head.textContent = `№ ${o.id} · ${o.code} · ${orderState(o.state)} · ${o.payment === "prepaid" ? t("prepaid") : t("at_pickup")}`;
  box.appendChild(head);
  const table = document.createElement("table");
  o.lines.forEach((l, i) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = l.name;
    const ordered = document.createElement("td");
    ordered.className = "num";
    ordered.textContent = `${quantityText(l, l.quantity)} × ${rub(l.price_kopecks)}`;
    const take = document.createElement("td");
    const input = document.createElement("input");
    input.name = `take-${i}`;
    input.id = `dlg-take-${i}`;
    input.inputMode = "decimal";
    input.size = 6;
    input.value = isWeighed(l) ? (l.quantity / 1000).toFixed(3).replace(".", ",") : String(l.quantity);
    take.appendChild(input);
    const pay = document.createElement("td");
    pay.className = "num";
    pay.textContent = rub(l.to_pay_kopecks);
    tr.append(name, ordered, take, pay);
    table.appendChild(tr);
  });
  box.appendChild(table);
  const total = document.createElement("div");
  total.textContent = `${t("total")}: ${rub(o.total_kopecks)} ₽`;
  box.appendChild(total);
  const open = ["accepted", "picking", "ready"].includes(o.state);
  const fields = open && o.payment === "at_pickup"
    ? [
        { name: "method", label: t("order_pay_by"), type: "select", options: [["cash", t("cash")], ["card", t("card")]] },
        { name: "cash", label: t("cash_given"), value: rub(o.total_kopecks) },
      ]
    : [];
  if (!open) {
    const note = document.createElement("div");
    note.textContent = t("order_closed", { s: orderState(o.state) });
    box.appendChild(note);
  }
  const v = await ask(t("order_hand_over_title", { n: o.id }), fields, box);
  if (!v || !open) return;
  const taken = [];
  for (let i = 0; i < o.lines.length; i++) {
    const l = o.lines[i];
    const text = document.getElementById(`dlg-take-${i}`) ? document.getElementById(`dlg-take-${i}`).value : String(l.quantity);
    const q = isWeighed(l) ? grams(text) : /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
    if (q === null) return showError("handover_quantity");
    taken.push(q);
  }
  const body = { taken, idempotency_key: newKey() };
  if (o.payment === "at_pickup") {
    // The till works out what is due for what is taken (a partly taken line pays its
    // share); cash says what was handed over.
    body.pay = v.method;
    if (v.method === "cash") {
      const cash = kopecks(v.cash);
      if (cash === null) return showError("bad_tender");
      body.cash_kopecks = cash;
    }
  }
  const r = await act(() => api("POST", `/api/orders/${o.id}/collect`, body));
  if (!r) return;
  const c = r.collected || {};
  show(c.receipt_no ? t("order_collected_paid", { n: o.id, r: c.receipt_no, c: rub(c.change_kopecks || 0) }) : t("order_collected", { n: o.id }), "ok");
  pollOrders();
}

// ---- login ----
async function showLogin() {
  state.token = null;
  sessionStorage.removeItem("kassa.token");
  closeEvents();
  clearTimeout(ordersTimer);
  $("login").classList.remove("hidden");
  $("login-pin").value = "";
  ($("login-user").value ? $("login-pin") : $("login-user")).focus();
}

// After a login: who may approve (the managers), and the live events of the till.
async function loggedIn() {
  const users = await api("GET", "/api/users").catch(() => null);
  if (users) {
    state.users = users.users;
    state.store = users.store;
  }
  openEvents();
  renderAll();
  pollOrders();
}

$("login-form").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const data = await api("POST", "/api/login", { user: $("login-user").value, pin: $("login-pin").value });
    state.token = data.token;
    state.user = data.user;
    sessionStorage.setItem("kassa.token", data.token);
    $("login-pin").value = "";
    $("login-message").textContent = "";
    $("login").classList.add("hidden");
    await loggedIn();
    $("code").focus();
  } catch (err) {
    // The next PIN is typed into an empty field, never after the wrong one.
    $("login-pin").value = "";
    $("login-pin").focus();
    let text = (ERRORS[lang] && ERRORS[lang][err.code]) || err.message2 || err.code;
    // The API's message has the count: "wrong PIN; 3 attempt(s) left before the login locks".
    const left = err.code === "wrong_pin" && /(\d+) attempt/.exec(err.message2 || "");
    if (left) text += ` ${t("attempts_left", { n: left[1] })}`;
    $("login-message").textContent = text;
  }
};

// ---- wiring ----
// "3*" (or "3 *", or "3*" and a code) sets how many of the next item go in: the next
// scan or typed code adds that many pieces.
$("scan-form").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("code").value.trim();
  $("code").value = "";
  const times = /^(\d{1,6})\s*[*×xх]\s*(.*)$/.exec(text);
  if (times) {
    const data = await act(() => api("POST", "/api/basket/multiplier", { quantity: Number(times[1]) }));
    if (!data) return;
    show(t("multiplier_set", { n: data.multiplier }), "ok");
    if (times[2]) await enterCode(times[2]);
    return;
  }
  if (text) await enterCode(text);
};
$("pay-cash").onclick = () => pay("cash");
$("pay-card").onclick = () => pay("card");
$("pay-mixed").onclick = () => pay("mixed");
$("discount").onclick = discount;
$("coupon").onclick = coupon;
// A basket above the store's limit is voided only with a manager's PIN: asked for when
// the till says so, then sent again with it (a new request, a new key).
async function voidBasket() {
  try {
    return await api("POST", "/api/basket/void", { idempotency_key: newKey() });
  } catch (e) {
    if (e.code !== "needs_manager") {
      if (e.code) showError(e.code, e.message2);
      return null;
    }
    const v = await ask(t("void_needs_manager"), managerFields());
    if (!v) return null;
    return act(() => api("POST", "/api/basket/void", { manager: approval(v), idempotency_key: newKey() }));
  }
}
$("void").onclick = () => voidBasket().then((d) => d && show(t("voided"), "ok"));
$("btn-shift").onclick = shiftDialog;
$("customer").onclick = async () => {
  const v = await ask(plain("customer"), [
    { name: "code", label: t("card_or_phone"), value: "" },
    { name: "phone", label: t("new_card"), value: "" },
    { name: "name", label: t("name"), value: "" },
  ]);
  if (!v) return;
  if (v.phone.trim()) {
    await act(() => api("POST", "/api/customer/new", { phone: v.phone, name: v.name.trim() || null }));
  } else if (v.code.trim()) {
    await act(() => api("POST", "/api/customer", { code: v.code.trim() }));
  }
};
$("pay-points").onclick = async () => {
  if (paying) return;
  const c = state.customer;
  if (!c) return showError("no_such_customer");
  const v = await ask(plain("pay_points"), [{ name: "points", label: `${t("points")} (≤ ${c.allowed})`, value: String(c.spendable_now || c.allowed) }]);
  if (!v) return;
  const byPoints = Number(v.points) * c.point_value_kopecks;
  const total = state.totals ? state.totals.total_kopecks : 0;
  const tenders = [{ kind: "points", amount_kopecks: byPoints }];
  if (total > byPoints) tenders.push({ kind: "cash", amount_kopecks: total - byPoints });
  await submitPayment(tenders);
};
$("customer-history").onclick = historyDialog;
$("btn-return").onclick = returnDialog;
$("btn-receipts").onclick = receiptsDialog;
$("btn-orders").onclick = ordersDialog;
// One key for both: a basket on the till is parked; on an empty till the parked ones are
// listed, to recall one.
$("park").onclick = () => {
  if (!state.basket.lines.length) return parkedDialog();
  return act(() => api("POST", "/api/basket/park", { idempotency_key: newKey() })).then((d) => d && show(t("parked_done"), "ok"));
};
$("btn-logout").onclick = async () => {
  await api("POST", "/api/logout").catch(() => null);
  state.user = null;
  showLogin();
};
$("btn-lang").onclick = () => {
  lang = lang === "ru" ? "en" : "ru";
  localStorage.setItem("kassa.lang", lang);
  applyLang();
};
// Keyboard first: every frequent action has a key, shown on its button; the code field
// takes what is typed otherwise. Function keys are ignored while a dialog is open
// (Enter and Escape answer it).
const SHORTCUTS = {
  F1: () => ordersDialog(),
  // The till's page is not reloaded by accident: F5 lists the shift's receipts.
  F5: () => receiptsDialog(),
  F2: () => $("customer").click(),
  F3: () => $("park").click(),
  F4: () => $("discount").click(),
  F6: () => $("coupon").click(),
  F7: () => $("pay-points").click(),
  F8: () => $("void").click(),
  F9: () => pay("cash"),
  F10: () => pay("card"),
};
// The header's actions, on Alt and a letter (by the key's place, whatever the layout).
const ALT_SHORTCUTS = {
  KeyS: () => $("btn-shift").click(),
  KeyR: () => $("btn-return").click(),
  KeyW: () => $("to-stock").click(),
  KeyL: () => $("btn-lang").click(),
  KeyQ: () => $("btn-logout").click(),
};
document.addEventListener("keydown", (e) => {
  const action = e.altKey ? ALT_SHORTCUTS[e.code] : SHORTCUTS[e.key];
  if (!action) return;
  e.preventDefault();
  if (e.repeat || document.querySelector("dialog[open]")) return;
  action();
});

// The till's live events; a browser's EventSource sends no headers, so the session
// token goes in the query string.
let events = null;
function closeEvents() {
  if (events) events.close();
  events = null;
}
function openEvents() {
  closeEvents();
  events = new EventSource(`/api/events?token=${encodeURIComponent(state.token)}`);
  events.onmessage = onEvent;
}
function onEvent(m) {
  const ev = JSON.parse(m.data);
  if (ev.type === "basket") {
    state.basket = ev.basket;
    state.totals = ev.totals;
    state.customer = ev.customer;
    renderCustomer();
    renderBasket();
    // The next scan: a refusal and the last sale's change go.
    if (ev.basket.lines.length && $("message").className !== "") show("", "");
    clearFixed();
    // Also when the basket empties: the last item's stock must not outlive its sale.
    showStock();
  } else if (ev.type === "order_scanned") {
    const dlg = $("dlg");
    if (dlg.open) thenDialog(() => handOverDialog(ev.order));
    else handOverDialog(ev.order);
  } else if (ev.type === "receipt_scanned") {
    returnDialog(`KASSA:${state.store}:${ev.seq}`);
  } else if (ev.type === "receipt_scanned_elsewhere") {
    returnDialog(ev.code);
  } else if (ev.type === "scan_rejected") {
    // The words for the refusal's code, with what to do next; the English reason only
    // for a code this page does not know.
    showError(ev.reason_code, ev.reason);
  } else if (ev.type === "shift") {
    state.shift = ev.report;
    renderShift();
    clearFixed();
  } else if (ev.type === "status") {
    state.status = ev.status;
    renderStatus();
  }
}

(async () => {
  applyLang();
  if (state.token) {
    const me = await api("GET", "/api/me").catch(() => null);
    if (me) {
      state.user = me.user;
      $("login").classList.add("hidden");
      await loggedIn();
      return;
    }
  }
  showLogin();
})();
