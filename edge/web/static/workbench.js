/* The workbench's only script: search-as-you-type, the live resident page (short polling) and
   the inbox's resident picker. Served from the node; no library; text is set with textContent. */
(function () {
  "use strict";

  function debounce(fn, ms) {
    var t = null;
    return function () { var a = arguments; clearTimeout(t); t = setTimeout(function () { fn.apply(null, a); }, ms); };
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); }   // logged out (idle): show the login page
        if (!r.ok) { throw new Error(r.status); }
        return r.json();
      });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  var SEX = { zh: { "1": "男", "2": "女" }, en: { "1": "male", "2": "female" } };
  var lang = (document.documentElement.lang || "zh").slice(0, 2);

  function residentLine(r) {
    var parts = [(SEX[lang] || SEX.zh)[r.sex] || "", r.birth_date || "", r.id_number || "", r.phone || ""];
    return parts.filter(Boolean).join("  ");
  }

  /* sealed ID numbers and phones are found only by the lengths the page lists (docs/field-encryption.md) */
  function numberHint(list, text) {
    var n = text.replace(/\s+/g, "");
    if (!list.dataset.hint || !/^[0-9]+[Xx]?$/.test(n)) { return null; }
    return list.dataset.lengths.split(",").indexOf(String(n.length)) < 0 ? list.dataset.hint : null;
  }

  /* 1. the workbench search box */
  function setupSearch() {
    var q = document.getElementById("q"), list = document.getElementById("results");
    if (!q || !list) { return; }
    var run = debounce(function () {
      var text = q.value.trim();
      if (!text) { list.textContent = ""; return; }
      getJSON(q.dataset.api + "?q=" + encodeURIComponent(text)).then(function (rows) {
        if (q.value.trim() !== text) { return; }
        list.textContent = "";
        if (!rows.length) { list.appendChild(el("li", "muted", numberHint(list, text) || list.dataset.empty)); return; }
        rows.forEach(function (r) {
          var li = el("li"), a = el("a");
          a.href = q.dataset.page.replace("RID", encodeURIComponent(r.id));
          a.appendChild(el("strong", null, r.name));
          a.appendChild(el("span", "muted", residentLine(r)));
          li.appendChild(a);
          list.appendChild(li);
        });
      }).catch(function () {});
    }, 150);
    q.addEventListener("input", run);
  }

  /* 2. the resident page: new readings appear without a reload */
  function setupLive() {
    var live = document.getElementById("live");
    if (!live) { return; }
    var seq = parseInt(live.dataset.seq || "0", 10), busy = false;
    var tbody = document.getElementById("reading-rows");

    function fmt(v) { return v === null || v === undefined ? "—" : String(Math.round(v * 10) / 10); }
    function setVital(key, text, when) {
      var v = document.getElementById("v-" + key), t = document.getElementById("t-" + key);
      if (!v) { return; }
      v.textContent = text;
      if (t) { t.textContent = when || ""; }
      v.parentNode.classList.add("fresh");
    }
    function addRow(r) {
      var empty = tbody.querySelector("tr.empty");
      if (empty) { empty.remove(); }
      var tr = el("tr", "fresh status-" + r.status);
      tr.dataset.id = r.id;
      tr.appendChild(el("td", null, r.local_time));
      tr.appendChild(el("td", null, lang === "zh" ? r.label_zh : r.label_en));
      tr.appendChild(el("td", null, fmt(r.value) + " " + r.unit_text));
      tr.appendChild(el("td", null, r.device_id));
      tr.appendChild(el("td", null, r.status_text));
      tr.appendChild(el("td"));
      tbody.insertBefore(tr, tbody.firstChild);
    }
    function poll() {
      if (busy || document.hidden) { return; }
      busy = true;
      getJSON(live.dataset.api + "?after=" + seq).then(function (data) {
        var fresh = data.readings || [];
        if (fresh.length) {
          fresh.slice().reverse().forEach(addRow);
          var L = data.latest || {};
          if (L["8480-6"] && L["8462-4"]) {
            setVital("bp", Math.round(L["8480-6"].value) + "/" + Math.round(L["8462-4"].value), L["8480-6"].local_time);
          }
          ["8867-4", "2339-0", "29463-7", "2708-6", "8310-5"].forEach(function (c) {
            if (L[c]) { setVital(c, fmt(L[c].value), L[c].local_time); }
          });
          fetch(live.dataset.charts, { credentials: "same-origin" }).then(function (r) { return r.text(); })
            .then(function (html) { document.getElementById("charts").innerHTML = html; });
        }
        seq = data.last_seq || seq;
        var measuringHere = !!(data.measuring && data.measuring.resident_id === live.dataset.resident);
        if (measuringHere !== (live.dataset.measuring === "1")) { window.location.reload(); }  // session began/ended
      }).catch(function () {}).then(function () { busy = false; });
    }
    setInterval(poll, 2000);
  }

  /* 3. the inbox: pick a resident for a group of readings */
  function setupPickers() {
    Array.prototype.forEach.call(document.querySelectorAll("form.assign"), function (form) {
      var input = form.querySelector("input.pick"), list = form.querySelector(".pick-results");
      var hidden = form.querySelector("input[name=resident_id]");
      input.addEventListener("input", debounce(function () {
        hidden.value = "";
        var text = input.value.trim();
        list.textContent = "";
        if (!text) { return; }
        getJSON(input.dataset.api + "?limit=8&q=" + encodeURIComponent(text)).then(function (rows) {
          list.textContent = "";
          rows.forEach(function (r) {
            var li = el("li"), b = el("button", "pick-one");
            b.type = "button";
            b.appendChild(el("strong", null, r.name));
            b.appendChild(el("span", "muted", residentLine(r)));
            b.addEventListener("click", function () { hidden.value = r.id; form.submit(); });
            li.appendChild(b);
            list.appendChild(li);
          });
        }).catch(function () {});
      }, 150));
    });
  }

  /* 4. the inbox: select every group for one dismissal with one reason */
  function setupBulk() {
    var all = document.getElementById("pick-all");
    if (!all) { return; }
    all.addEventListener("change", function () {
      Array.prototype.forEach.call(document.querySelectorAll("input.pick-group"), function (c) { c.checked = all.checked; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { setupSearch(); setupLive(); setupPickers(); setupBulk(); });
})();
