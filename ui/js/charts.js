// Time-series charts on uPlot (vendored under ui/vendor/uplot).

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { h } from './dom.js';

/** The palette series are drawn with, in order. */
export const COLORS = ['#4f46e5', '#0891b2', '#f59e0b', '#db2777', '#16a34a', '#7c3aed', '#ea580c', '#64748b'];

/**
 * A chart card: `series` are `{label, values, color?, fill?}` over `times` (unix seconds).
 * Returns the card; the chart follows the card's width.
 */
export function timeChart(title, times, series, { stacked = false, format = (v) => String(v), height = 220 } = {}) {
  const box = h('div', { class: 'chart', role: 'img', 'aria-label': `${title} over time` });
  const card = h('section', { class: 'card chart-card' }, h('h2', {}, title), box);
  const data = [times];
  const drawn = [];
  let below = null;
  for (const [i, s] of series.entries()) {
    const values = stacked && below ? s.values.map((v, j) => (v ?? 0) + (below[j] ?? 0)) : s.values;
    data.push(values);
    if (stacked) below = values;
    const color = s.color || COLORS[i % COLORS.length];
    drawn.push({
      label: s.label,
      stroke: color,
      width: 2,
      fill: s.fill === false ? undefined : `${color}22`,
      points: { show: times.length < 3 },
      value: (u, v, si, idx) => format(series[si - 1].values[idx] ?? v),
    });
  }
  const options = {
    width: 600,
    height,
    series: [{}, ...drawn],
    axes: [
      { stroke: '#64748b', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#e2e8f0' } },
      { stroke: '#64748b', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#e2e8f0' }, size: 64, values: (u, vals) => vals.map(format) },
    ],
    scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  let plot = null;
  const observer = new ResizeObserver(() => {
    const width = Math.max(240, Math.floor(box.clientWidth));
    if (!plot) plot = new uPlot({ ...options, width }, data, box);
    else plot.setSize({ width, height });
  });
  observer.observe(box);
  return card;
}

/** A horizontal bar list: `[label, value]` rows scaled to the largest. */
export function barList(title, rows, format = String, empty = 'No data in this range.') {
  const max = Math.max(0, ...rows.map(([, v]) => v));
  return h('section', { class: 'card' }, h('h2', {}, title),
    rows.length
      ? h('ul', { class: 'bars' }, rows.map(([label, value], i) => h('li', {},
        h('div', { class: 'bar-label' }, h('span', {}, label), h('span', { class: 'num' }, format(value))),
        h('div', { class: 'bar-track' }, h('div', {
          class: 'bar-fill',
          style: { width: `${max ? (value / max) * 100 : 0}%`, background: COLORS[i % COLORS.length] },
        })))))
      : h('div', { class: 'empty' }, empty));
}
