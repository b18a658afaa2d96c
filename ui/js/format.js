// Number, money, time and duration formatting for the pages.

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat('en');

/** 1234 -> "1.2K"; small numbers as they are. */
export function count(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Math.abs(n) < 10000 ? whole.format(n) : compact.format(n);
}

/** US dollars with enough digits for fractions of a cent. */
export function money(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  const size = Math.abs(n);
  const digits = n === 0 || size >= 0.01 ? 2 : size >= 0.0001 ? 4 : 6;
  return `$${n.toFixed(digits)}`;
}

/** A chart axis label in dollars: as few digits as the tick needs. */
export function moneyTick(n) {
  if (!n) return '$0';
  return `$${Number(n.toPrecision(3))}`;
}

/** Milliseconds as "230 ms" or "1.4 s". */
export function latency(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  return ms < 1000 ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** A fraction as a percentage. */
export function percent(fraction) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return '–';
  return `${(fraction * 100).toFixed(fraction >= 0.999 || fraction === 0 ? 0 : 1)}%`;
}

/** An ISO time or unix milliseconds as local date and time. */
export function dateTime(value) {
  if (!value) return '–';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

/** A log time, short: the time of day for today, else the date and time. */
export function shortTime(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return '–';
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString()
    : `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
}

/** How long ago: "12 s ago", "3 min ago", "2 h ago". */
export function ago(value) {
  const t = new Date(value).getTime();
  if (Number.isNaN(t)) return '–';
  return `${span((Date.now() - t) / 1000)} ago`;
}

/** Seconds as "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ''}`;
  }
  const hours = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)} d${hours ? ` ${hours} h` : ''}`;
}

/** Bifrost's reset durations ("1h", "30d", "1M") in words. */
export function resetWords(duration) {
  if (!duration) return '';
  const m = /^(\d+)\s*([smhdwMy])$/.exec(duration);
  if (!m) return duration;
  const units = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', M: 'month', y: 'year' };
  const n = Number(m[1]);
  return n === 1 ? `per ${units[m[2]]}` : `per ${n} ${units[m[2]]}s`;
}
