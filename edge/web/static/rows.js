// The health check's tables of rows (住院史, 家庭病床史, 主要用药情况, 预防接种史): 添加一行 and 删除
// in the page, without a round trip. Without JavaScript the same buttons post the form and the
// server draws it again with the row added or removed (edge/web/healthcheck.py, _edited_rows).
// 确认 on a proposed medication row (healthcheck.carry) drops its hidden `_proposed` mark: only then
// is the row saved; without JavaScript the button posts the form and the server drops the mark.
(function () {
  function settle(table) {                                  // no proposed row left: the note goes
    var note = document.getElementById("proposed-" + table.dataset.table);
    if (note && !table.querySelector("tr.proposed")) note.parentNode.removeChild(note);
  }
  function confirmRow(tr) {
    Array.prototype.forEach.call(tr.querySelectorAll("input[name$='_proposed'], .proposed-from, .confirm-row"),
      function (el) { el.parentNode.removeChild(el); });
    tr.classList.remove("proposed");
    var table = tr.closest("table"), next = table.querySelector("tr.proposed .confirm-row");
    settle(table);
    if (next) next.focus();
  }
  function add(table) {
    var body = table.tBodies[0];
    if (body.rows.length >= parseInt(table.dataset.max, 10)) return null;
    var n = 0;
    Array.prototype.forEach.call(body.rows, function (r) { n = Math.max(n, parseInt(r.dataset.n, 10) || 0); });
    var tpl = document.getElementById("row-template-" + table.dataset.table);
    body.insertAdjacentHTML("beforeend", tpl.innerHTML.replace(/__n__/g, String(n + 1)));
    return body.rows[body.rows.length - 1];
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("button.add-row, button.remove-row, button.confirm-row") : null;
    if (!b) return;
    e.preventDefault();
    if (b.classList.contains("confirm-row")) return confirmRow(b.closest("tr"));
    if (b.classList.contains("remove-row")) {
      var tr = b.closest("tr"), table = tr.closest("table");
      tr.parentNode.removeChild(tr);
      if (!table.tBodies[0].rows.length) add(table);        // a table always has a row to type in
      settle(table);
      return;
    }
    var row = add(document.getElementById("rows-" + b.dataset.table));
    var first = row && row.querySelector("input");
    if (first) first.focus();
  });
})();
