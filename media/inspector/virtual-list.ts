/**
 * A virtualized table body: only the rows in view (plus a margin) exist in
 * the DOM; fixed-height rows, and two spacer rows whose heights (set through
 * CSSOM, which the CSP allows) give the scroll container its full height.
 */
export const ROW_HEIGHT = 22;
const MARGIN = 8;

export interface VirtualTableOptions {
  /** The scrolling element around the table. */
  scroller: HTMLElement;
  tbody: HTMLTableSectionElement;
  columns: number;
  count: number;
  /** The HTML of row `i` (a `<tr>`), escaped by the caller. */
  row: (i: number) => string;
}

export class VirtualTable {
  private first = -1;
  private last = -1;
  private readonly top: HTMLTableRowElement;
  private readonly bottom: HTMLTableRowElement;
  /** Called after the user scrolled (to save the position). */
  onScrolled: (() => void) | null = null;
  private readonly onScroll = (): void => {
    this.update(false);
    this.onScrolled?.();
  };

  constructor(private readonly o: VirtualTableOptions) {
    this.top = this.spacer('spacer-top');
    this.bottom = this.spacer('spacer-bottom');
    o.scroller.addEventListener('scroll', this.onScroll, { passive: true });
  }

  private spacer(cls: string): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.className = 'spacer ' + cls;
    tr.setAttribute('aria-hidden', 'true');
    const td = document.createElement('td');
    td.colSpan = this.o.columns;
    tr.appendChild(td);
    return tr;
  }

  /**
   * The viewport height. Before the rows exist the scroller is only as tall
   * as its header, so assume at least its CSS max-height (396px) then.
   */
  private viewport(): number {
    return Math.max(this.o.scroller.clientHeight, 420);
  }

  /** After a scroll: redraw only if the rows in view are not all drawn already. */
  update(force: boolean): void {
    const top = this.o.scroller.scrollTop;
    const h = this.viewport();
    const needFirst = Math.max(0, Math.floor(top / ROW_HEIGHT));
    const needLast = Math.min(this.o.count, Math.ceil((top + h) / ROW_HEIGHT));
    if (!force && this.first >= 0 && needFirst >= this.first && needLast <= this.last) return;
    this.render(top, h);
  }

  /**
   * Draw the rows around scroll position `top` without reading the layout
   * (a fresh table needs no forced layout: the caller knows where it is).
   */
  render(top: number, h = 420): void {
    const { tbody, count } = this.o;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - MARGIN);
    const last = Math.min(count, Math.ceil((top + h) / ROW_HEIGHT) + MARGIN);
    this.first = first;
    this.last = last;
    const parts: string[] = [];
    for (let i = first; i < last; i++) parts.push(this.o.row(i));
    tbody.innerHTML = parts.join('');
    (this.top.firstChild as HTMLElement).style.height = `${first * ROW_HEIGHT}px`;
    (this.bottom.firstChild as HTMLElement).style.height = `${(count - last) * ROW_HEIGHT}px`;
    this.top.hidden = first === 0;
    this.bottom.hidden = last === count;
    tbody.prepend(this.top);
    tbody.append(this.bottom);
  }

  /** Redraw the rows drawn now (after a selection change), at the same place. */
  redraw(): void {
    if (this.first < 0) return;
    const parts: string[] = [];
    for (let i = this.first; i < this.last; i++) parts.push(this.o.row(i));
    this.o.tbody.innerHTML = parts.join('');
    this.o.tbody.prepend(this.top);
    this.o.tbody.append(this.bottom);
  }

  /** The scroll position that shows row `i` near the top. */
  static topFor(i: number): number {
    return Math.max(0, (i - 3) * ROW_HEIGHT);
  }

  /** Scroll so that row `i` is in view, then draw. */
  scrollTo(i: number): void {
    const y = i * ROW_HEIGHT;
    const s = this.o.scroller;
    if (y < s.scrollTop || y + ROW_HEIGHT > s.scrollTop + this.viewport()) s.scrollTop = VirtualTable.topFor(i);
    this.update(true);
  }

  get scrollTop(): number {
    return this.o.scroller.scrollTop;
  }

  dispose(): void {
    this.o.scroller.removeEventListener('scroll', this.onScroll);
  }
}
