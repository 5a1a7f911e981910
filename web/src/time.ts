/** Local dates and times in the establishment's zone (not the browser's). */

const dateFormats = new Map<string, Intl.DateTimeFormat>();

function partsIn(timezone: string, at: Date): Record<string, string> {
  let format = dateFormats.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-GB', {
      timeZone: timezone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      weekday: 'short',
      hourCycle: 'h23',
    });
    dateFormats.set(timezone, format);
  }
  const parts: Record<string, string> = {};
  for (const part of format.formatToParts(at)) parts[part.type] = part.value;
  return parts;
}

/** `YYYY-MM-DD` of `at` in `timezone`. */
export function localDate(timezone: string, at: Date = new Date()): string {
  const p = partsIn(timezone, at);
  return `${p.year}-${p.month}-${p.day}`;
}

/** `HH:MM` of `at` in `timezone`. */
export function localTime(timezone: string, at: Date | string): string {
  const p = partsIn(timezone, typeof at === 'string' ? new Date(at) : at);
  return `${p.hour}:${p.minute}`;
}

/** Minutes since local midnight. */
export function minuteOfDay(timezone: string, at: Date | string): number {
  const p = partsIn(timezone, typeof at === 'string' ? new Date(at) : at);
  return Number(p.hour) * 60 + Number(p.minute);
}

/** `mon` .. `sun` of `at` in `timezone` (the keys of weekly hours). */
export function weekday(timezone: string, at: Date = new Date()): string {
  return (partsIn(timezone, at).weekday ?? 'Mon').slice(0, 3).toLowerCase();
}

/** `"09:30"` to minutes. */
export function hhmm(text: string): number {
  const [h, m] = text.split(':');
  return Number(h) * 60 + Number(m);
}

/** "in 5 min", "now", "5 min late". */
export function relative(at: string, now: Date): string {
  const minutes = Math.round((new Date(at).getTime() - now.getTime()) / 60_000);
  if (minutes === 0) return 'now';
  return minutes > 0 ? `in ${minutes} min` : `${-minutes} min ago`;
}

/** A long date for the header: "Monday, 7 December". */
export function longDate(timezone: string, at: Date = new Date()): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone: timezone, weekday: 'long', day: 'numeric', month: 'long' }).format(at);
}
