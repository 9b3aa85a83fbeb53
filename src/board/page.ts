/** The board's one page: no external resource; it polls `/api/runs` and redraws. */
export const BOARD_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>distill board</title>
<style>
body{font-family:"DejaVu Sans",Verdana,Arial,sans-serif;margin:1.5rem auto;max-width:1200px;padding:0 1rem;color:#222}
table{border-collapse:collapse;font-size:.9rem}th,td{padding:.3rem .6rem;border-bottom:1px solid #e2e2e2;text-align:left}
thead th{border-bottom:2px solid #888}.running{color:#2a6fb0;font-weight:bold}.done{color:#3b7d2a}.stopped{color:#a06000}
.curve{margin:.5rem 0 1.5rem}.curve img{max-width:100%}button{font-size:.95rem;padding:.3rem .8rem}
figure svg{max-width:100%;height:auto}
</style></head><body>
<h1>distill board</h1>
<p>Runs under this folder, refreshed every 2 s. Select finished runs and compare them.</p>
<table id="runs"><thead><tr><th></th><th>run</th><th>name</th><th>state</th><th>epochs logged</th><th>last epoch</th><th>students (test accuracy)</th><th>reports</th></tr></thead><tbody></tbody></table>
<p><button id="compare">Compare selected runs</button></p>
<div id="comparison-area"></div>
<h2>Curves</h2>
<div id="curves"></div>
<script>
const selected = new Set();
const shown = new Map();
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
async function refresh() {
  const runs = await (await fetch('/api/runs')).json();
  const body = document.querySelector('#runs tbody');
  body.innerHTML = runs.map((r) => \`<tr data-run="\${esc(r.id)}" data-points="\${r.points}" data-status="\${r.status}">
    <td><input type="checkbox" class="pick" value="\${esc(r.id)}" \${selected.has(r.id) ? 'checked' : ''} \${r.status === 'done' ? '' : 'disabled'}></td>
    <td>\${esc(r.id)}</td><td>\${esc(r.name)}</td><td class="\${r.status}">\${r.status}</td><td class="points">\${r.points}</td>
    <td>\${esc(r.last ?? '')}</td>
    <td>\${(r.students ?? []).map((s) => esc(s.name) + ' ' + (s.accuracy * 100).toFixed(2) + ' %').join('<br>')}</td>
    <td>\${r.reports.map((p) => \`<a href="/files/\${encodeURI(r.id + '/' + p)}" target="_blank">\${esc(p.split('/')[0])}</a>\`).join(' ')}</td></tr>\`).join('');
  body.querySelectorAll('.pick').forEach((b) => b.addEventListener('change', () => (b.checked ? selected.add(b.value) : selected.delete(b.value))));
  const curves = document.getElementById('curves');
  for (const r of runs) {
    if (r.points === 0) continue;
    let box = shown.get(r.id);
    if (!box) {
      box = document.createElement('div');
      box.className = 'curve';
      box.dataset.run = r.id;
      box.innerHTML = '<h3>' + esc(r.id) + '</h3><img alt="curves of ' + esc(r.id) + '">';
      curves.appendChild(box);
      shown.set(r.id, box);
    }
    if (box.dataset.points !== String(r.points)) {
      box.dataset.points = String(r.points);
      box.querySelector('img').src = '/api/curve/' + encodeURIComponent(r.id) + '?points=' + r.points;
    }
  }
}
document.getElementById('compare').addEventListener('click', async () => {
  const q = [...selected].map((id) => 'run=' + encodeURIComponent(id)).join('&');
  const res = await fetch('/api/compare?' + q);
  document.getElementById('comparison-area').innerHTML = await res.text();
});
refresh();
setInterval(refresh, 2000);
</script></body></html>`;
