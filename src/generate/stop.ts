// Stop strings, matched on the decoded text as it streams, across token boundaries. A stop string may arrive split over
// several tokens ("<", "/s", ">"), so the matcher holds back any tail of the text that could still be the start of a
// stop string, and releases it once it cannot. When a stop string is found, the text before it is released and the
// stop string itself (and anything after it) is not: it is never shown to the user (OpenAI's `stop` semantics).
// Boundary: text in, text out; no tokens.

export class StopMatcher {
  private pending = '';
  private readonly stops: string[];
  stopped: string | null = null; // the stop string that matched

  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  // Feed a text delta; returns the text safe to emit now.
  push(delta: string): string {
    if (this.stopped !== null) return '';
    if (this.stops.length === 0) return delta;
    const text = this.pending + delta;
    // earliest occurrence of any stop string (the longest one on a tie at the same position)
    let at = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > (this.stopped?.length ?? 0)))) {
        at = i;
        this.stopped = s;
      }
    }
    if (at >= 0) {
      this.pending = '';
      return text.slice(0, at);
    }
    const hold = this.holdBack(text);
    this.pending = text.slice(text.length - hold);
    return text.slice(0, text.length - hold);
  }

  // End of generation without a stop string: release what was held back.
  flush(): string {
    const t = this.stopped === null ? this.pending : '';
    this.pending = '';
    return t;
  }

  // Length of the longest suffix of text that is a proper prefix of some stop string.
  private holdBack(text: string): number {
    let best = 0;
    for (const s of this.stops) {
      const max = Math.min(s.length - 1, text.length);
      for (let n = max; n > best; n--) {
        if (text.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
