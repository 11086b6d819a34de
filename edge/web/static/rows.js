// The health check's tables of rows (住院史, 家庭病床史, 主要用药情况, 预防接种史): 添加一行 and 删除
// in the page, without a round trip. Without JavaScript the same buttons post the form and the
// server draws it again with the row added or removed (edge/web/healthcheck.py, _edited_rows).
(function () {
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
    var b = e.target.closest ? e.target.closest("button.add-row, button.remove-row") : null;
    if (!b) return;
    e.preventDefault();
    if (b.classList.contains("remove-row")) {
      var tr = b.closest("tr"), table = tr.closest("table");
      tr.parentNode.removeChild(tr);
      if (!table.tBodies[0].rows.length) add(table);        // a table always has a row to type in
      return;
    }
    var row = add(document.getElementById("rows-" + b.dataset.table));
    var first = row && row.querySelector("input");
    if (first) first.focus();
  });
})();
