// While the doctor types or picks a measurement, the page asks the server's rules (the same the
// save applies: one source of truth) for the urgent-referral alert, the classification, the next
// step and date; suggestions stop once the doctor picks one by hand (the server re-checks on save).
(function () {
  Array.prototype.forEach.call(document.querySelectorAll(".print-button"), function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
  var form = document.getElementById("followup-form");
  if (!form) return;
  var touched = {}, asked = 0, timer = null;
  var WATCHED = ["sbp", "dbp", "fbg", "heart_rate", "danger_signs", "adverse_reaction", "weight", "height",
                 "visit_date", "temperature"];
  function num(n) { var e = form.elements[n]; return e && e.value !== "" ? parseFloat(e.value) : null; }
  function pick(name, value) {
    if (touched[name] || value === null || value === undefined) return;
    var r = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (r) r.checked = true;
  }
  function query() {
    var q = new URLSearchParams();
    WATCHED.forEach(function (n) {
      Array.prototype.forEach.call(form.querySelectorAll('[name="' + n + '"]'), function (e) {
        if ((e.type === "checkbox" || e.type === "radio") && !e.checked) return;
        if (e.value !== "") q.append(n, e.value);
      });
    });
    return q.toString();
  }
  function showAlerts(alerts) {
    var box = document.getElementById("urgent-alert"), list = document.getElementById("urgent-reasons");
    if (!box || !list) return;
    list.textContent = "";
    alerts.forEach(function (a) { var li = document.createElement("li"); li.textContent = a.text; list.appendChild(li); });
    box.hidden = !alerts.length;
  }
  function apply(s) {
    showAlerts(s.alerts || []);
    pick("classification", s.classification); pick("next_step", s.next_step);
    var next = form.elements["next_visit_date"];
    if (next && !touched.next_visit_date && s.next_visit_date) next.value = s.next_visit_date;
    var b = form.elements["bmi"];
    if (b && s.bmi && !touched.bmi) b.value = s.bmi;
  }
  var pending = null, waiting = false;
  function ask() {
    timer = null;
    var mine = ++asked;
    pending = fetch(form.dataset.suggest + "?" + query(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (s) { if (mine === asked) apply(s); form.dataset.checked = String(mine); })
      .catch(function () {})
      .then(function () { if (mine === asked) pending = null; });
  }
  function suggest() {
    clearTimeout(timer);
    timer = setTimeout(ask, 120);
  }
  // saved before the answer came back: wait for it, so the suggestions are on the form that is sent
  form.addEventListener("submit", function (e) {
    if (timer) { clearTimeout(timer); ask(); }
    if (!pending || waiting) return;
    e.preventDefault();
    waiting = true;
    pending.then(function () { form.requestSubmit ? form.requestSubmit(document.getElementById("save")) : form.submit(); })
      .then(function () { waiting = false; });
  });
  // the visit's readings: ticking BP measurements fills their mean, with the reading ids
  function setSource(name, value, ids, n) {
    var input = form.elements[name], src = document.getElementById("src-" + name);
    var badge = document.getElementById("badge-" + name);
    if (!input || !src) return;
    input.value = value === null ? "" : String(value);
    src.value = ids.join(",");
    if (badge) {
      badge.hidden = !ids.length;
      var extra = badge.querySelector(".src-n");
      if (extra) extra.textContent = n > 1 ? " · " + (form.dataset.meanOf || "mean of %n").replace("%n", n) : "";
    }
  }
  function halfUp(x) { return Math.floor(x + 0.5); }
  function useBp() {
    var picked = Array.prototype.filter.call(form.querySelectorAll('input[name="use_bp"]'), function (c) { return c.checked; });
    var hint = document.getElementById("bp-mean");
    if (picked.length > 3) { if (hint) hint.textContent = form.dataset.tooMany || ""; return; }
    [["sbp", "sbp"], ["dbp", "dbp"], ["heart_rate", "pulse"]].forEach(function (p) {
      var used = picked.filter(function (c) { return c.dataset[p[1]] !== ""; });
      if (!used.length) { setSource(p[0], null, [], 0); return; }
      var sum = used.reduce(function (a, c) { return a + parseFloat(c.dataset[p[1]]); }, 0);
      setSource(p[0], halfUp(sum / used.length), used.map(function (c) {
        return c.getAttribute("data-id-" + p[0]); }), used.length);
    });
    if (hint) hint.textContent = picked.length > 1 ? num("sbp") + "/" + num("dbp") + " mmHg" : "";
  }
  function useOffered(target) {
    var name = target.name.slice(4);
    setSource(name, target.dataset.value, [target.value], 1);
  }
  // readings taken after the form was opened appear in the table while the session is open; the
  // default (mean of the last two) follows them until the doctor ticks or types a BP by hand
  var bpTable = document.getElementById("bp-choices"), bpByHand = false;
  function addBpRow(m) {
    var tr = document.createElement("tr"), box = document.createElement("input");
    tr.dataset.key = m.key;
    box.type = "checkbox"; box.name = "use_bp"; box.value = m.key;
    box.dataset.sbp = m.sbp; box.dataset.dbp = m.dbp; box.dataset.pulse = m.pulse === null ? "" : m.pulse;
    ["sbp", "dbp", "heart_rate"].forEach(function (f) { box.setAttribute("data-id-" + f, m.ids[f] || ""); });
    var cells = [box, m.local_time, m.device_id, Math.round(m.sbp) + "/" + Math.round(m.dbp),
                 m.pulse === null ? "" : String(Math.round(m.pulse))];
    cells.forEach(function (c) {
      var td = document.createElement("td");
      if (typeof c === "string") td.textContent = c; else td.appendChild(c);
      tr.appendChild(td);
    });
    bpTable.tBodies[0].appendChild(tr);
  }
  function pollSession() {
    fetch(bpTable.dataset.poll, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) {
        var fresh = d.bp.filter(function (m) { return !bpTable.querySelector('tr[data-key="' + m.key + '"]'); });
        fresh.forEach(addBpRow);
        if (fresh.length) {
          bpTable.hidden = false;
          var hint = document.getElementById("bp-mean-hint"), none = document.getElementById("no-readings");
          if (hint) hint.hidden = false;
          if (none) none.hidden = true;
          if (!bpByHand) {
            Array.prototype.forEach.call(form.querySelectorAll('input[name="use_bp"]'), function (c) {
              c.checked = d.chosen.indexOf(c.value) >= 0; });
            useBp(); suggest();
          }
        }
        if (d.open) setTimeout(pollSession, 3000);
      }).catch(function () { setTimeout(pollSession, 10000); });
  }
  if (bpTable && bpTable.dataset.poll) setTimeout(pollSession, 3000);
  form.addEventListener("input", function (e) {
    var n = e.target.name, src = document.getElementById("src-" + n);
    if (n === "sbp" || n === "dbp") bpByHand = true;
    if (src && e.isTrusted && e.target.type !== "hidden") {     // typed by hand: no longer the device's value
      src.value = "";
      var badge = document.getElementById("badge-" + n);
      if (badge) badge.hidden = true;
    }
    if (WATCHED.indexOf(n) >= 0) suggest();                       // the alert shows while typing
  });
  form.addEventListener("change", function (e) {
    var n = e.target.name;
    if (n === "use_bp") { bpByHand = true; useBp(); suggest(); return; }
    if (n && n.indexOf("use_") === 0) { useOffered(e.target); suggest(); return; }
    if (n === "classification" || n === "next_step" || n === "next_visit_date" || n === "bmi") { touched[n] = true; return; }
    if (WATCHED.indexOf(n) >= 0) suggest();
  });
})();
