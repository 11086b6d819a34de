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
  form.addEventListener("change", function (e) {
    var n = e.target.name;
    if (n === "classification" || n === "next_step" || n === "next_visit_date") { touched[n] = true; return; }
    if (n === "sbp" || n === "dbp" || n === "fbg" || n === "danger_signs") suggest();
    if (n === "weight" || n === "height") {
      var w = num("weight"), h = num("height"), b = form.elements["bmi"];
      if (w && h && b) b.value = (w / Math.pow(h / 100, 2)).toFixed(1);
    }
  });
})();
