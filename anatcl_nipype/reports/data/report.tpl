<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="anatcl-nipype with NiReports (https://www.nipreps.org/)">
<title>{{ title }}</title>
<style>
{% include "report.css" %}
</style>
</head>
<body>
<nav id="navigation" aria-label="Sections">
<p class="nav-title">anatcl-nipype</p>
<ul>
{% for sub_report in sections %}
  {% if sub_report.isnested %}
  <li><details open><summary><a href="#{{ sub_report.name | replace(' ', '-') }}">{{ sub_report.name }}</a></summary>
    <ul class="participants">
    {% for run_report in sub_report.reportlets %}
      {% if run_report.title %}<li><a href="#{{ run_report.name }}">{{ run_report.title }}</a></li>{% endif %}
    {% endfor %}
    </ul></details></li>
  {% else %}
  <li><a href="#{{ sub_report.name | replace(' ', '-') }}">{{ sub_report.name }}</a></li>
  {% endif %}
{% endfor %}
</ul>
</nav>
<main>
<h1>{{ title }}</h1>
{% for sub_report in sections %}
<section id="{{ sub_report.name | replace(' ', '-') }}">
<h2>{{ sub_report.name }}</h2>
{% for run_report in sub_report.reportlets %}
<div id="{{ run_report.name }}" class="reportlet">
  {% if run_report.title and not sub_report.isnested %}<h3>{{ run_report.title }}</h3>{% endif %}
  {% if run_report.description %}<p class="description">{{ run_report.description }}</p>{% endif %}
  {% for elem in run_report.components %}{% if elem[0] %}{{ elem[0] }}{% endif %}{% endfor %}
</div>
{% endfor %}
</section>
{% endfor %}
</main>
<script>
// Tables of class "sortable": a click on a header sorts the rows by that column (numbers as
// numbers, empty cells last); a second click reverses the order.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var head = table.rows[0];
  Array.prototype.forEach.call(head.cells, function (th, column) {
    th.style.cursor = "pointer";
    th.title = "Sort by " + th.textContent;
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(head.cells, function (c) { c.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var keyed = Array.prototype.slice.call(table.rows, 1).map(function (row) {
        var text = row.cells[column] ? row.cells[column].textContent.trim() : "";
        return {row: row, text: text, number: parseFloat(text)};
      });
      keyed.sort(function (a, b) {
        if (!a.text || !b.text) { return (a.text ? 0 : 1) - (b.text ? 0 : 1); }
        var order = !isNaN(a.number) && !isNaN(b.number) ? a.number - b.number
          : a.text.localeCompare(b.text, undefined, {numeric: true});
        return up ? order : -order;
      });
      var body = head.parentNode;
      var next = body.nextSibling;
      table.removeChild(body);  // off the page while rows move: one layout, not thousands
      keyed.forEach(function (item) { body.appendChild(item.row); });
      table.insertBefore(body, next);
    });
  });
});
</script>
</body>
</html>
