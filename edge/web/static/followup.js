// Re-suggest the classification, next step and next date while the doctor types a measurement,
// until the doctor picks one by hand (the server re-checks everything on save).
(function () {
  Array.prototype.forEach.call(document.querySelectorAll(".print-button"), function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
  var form = document.getElementById("followup-form");
  if (!form) return;
  var kind = form.dataset.form, sT = +form.dataset.sbpTarget, dT = +form.dataset.dbpTarget;
  var touched = {};
  function num(n) { var e = form.elements[n]; return e && e.value !== "" ? parseFloat(e.value) : null; }
  function pick(name, value) {
    if (touched[name] || value === null) return;
    var r = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (r) r.checked = true;
  }
  function plus(days, months) {
    var d = new Date((form.dataset.visit || "") + "T00:00:00Z");
    if (isNaN(d)) return null;
    if (months) d.setUTCMonth(d.getUTCMonth() + months); else d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }
  function suggest() {
    var sbp = num("sbp"), dbp = num("dbp"), fbg = num("fbg"), cls = null, urgent = false;
    if (kind === "diabetes") { if (fbg !== null) cls = fbg < 7.0 ? "1" : "2";
      urgent = fbg !== null && (fbg >= 16.7 || fbg <= 3.9); }
    else if (sbp !== null && dbp !== null) cls = (sbp < sT && dbp < dT) ? "1" : "2";
    urgent = urgent || (sbp !== null && sbp >= 180) || (dbp !== null && dbp >= 110);
    urgent = urgent || form.querySelector('input[name="danger_signs"]:checked') !== null;
    var prev = form.dataset.previous, step = "1";
    if (urgent) step = "4"; else if (cls === "2" && (prev === "2" || prev === "3")) step = "3";
    else if (cls === "2") step = "2";
    pick("classification", cls); pick("next_step", step);
    var next = form.elements["next_visit_date"];
    if (next && !touched.next_visit_date) next.value = step === "1" ? plus(0, 3) : plus(14, 0);
  }
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
  form.addEventListener("input", function (e) {
    var n = e.target.name, src = document.getElementById("src-" + n);
    if (src && e.isTrusted && e.target.type !== "hidden") {     // typed by hand: no longer the device's value
      src.value = "";
      var badge = document.getElementById("badge-" + n);
      if (badge) badge.hidden = true;
    }
  });
  form.addEventListener("change", function (e) {
    if (e.target.name === "use_bp") { useBp(); suggest(); return; }
    if (e.target.name && e.target.name.indexOf("use_") === 0) { useOffered(e.target); suggest(); return; }
    var n = e.target.name;
    if (n === "classification" || n === "next_step" || n === "next_visit_date") { touched[n] = true; return; }
    if (n === "sbp" || n === "dbp" || n === "fbg" || n === "danger_signs") suggest();
    if (n === "weight" || n === "height") {
      var w = num("weight"), h = num("height"), b = form.elements["bmi"];
      if (w && h && b) b.value = (w / Math.pow(h / 100, 2)).toFixed(1);
    }
  });
})();
