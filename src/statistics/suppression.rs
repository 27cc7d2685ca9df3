//! Which counts of one calendar year may be published (röjandekontroll).
//!
//! The year is a cube: place × category × month, with every margin a query can ask for
//! (all places, all categories; quarters and the year). Every cell of the cube is a sum
//! of month cells, and every query publishes some of those cells, so the whole cube is
//! decided at once and every query reads from the same decision:
//!
//! 1. **Primary**: a cell under [`THRESHOLD`] (zero included) is suppressed.
//! 2. **Complementary**: the published cells are linear equations over the month cells.
//!    A suppressed cell is *determined* when its sum lies in the span of the published
//!    ones (a reader could compute it by adding and subtracting published numbers). While
//!    any suppressed cell is determined, one more cell beside it is suppressed (the
//!    smallest published sibling, else parent, else child), and the check runs again.
//!    If that does not settle, the whole year is suppressed.
//!
//! The span is computed modulo a large prime. That can only err towards "determined"
//! (a combination over the rationals is one modulo the prime too), so at worst it
//! suppresses more than needed, never less.

use std::ops::Range;

/// Nothing below this is ever published.
pub const THRESHOLD: i64 = 5;
const MONTHS: usize = 12;
/// 12 months, 4 quarters, the year.
const PERIODS: usize = 17;
/// After this many rounds of complementary suppression the year is suppressed whole.
const MAX_ROUNDS: usize = 400;
const PRIME: u64 = (1 << 61) - 1;

/// A bucket within one calendar year; months and quarters count from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Month(u8),
    Quarter(u8),
    Year,
}

impl Period {
    fn index(self) -> usize {
        match self {
            Period::Month(m) => m as usize,
            Period::Quarter(q) => MONTHS + q as usize,
            Period::Year => PERIODS - 1,
        }
    }

    fn from_index(i: usize) -> Period {
        match i {
            0..MONTHS => Period::Month(i as u8),
            16 => Period::Year,
            _ => Period::Quarter((i - MONTHS) as u8),
        }
    }

    /// The months (0-based) the bucket covers.
    pub fn months(self) -> Range<usize> {
        match self {
            Period::Month(m) => m as usize..m as usize + 1,
            Period::Quarter(q) => 3 * q as usize..3 * q as usize + 3,
            Period::Year => 0..MONTHS,
        }
    }

    fn parent(self) -> Option<Period> {
        match self {
            Period::Month(m) => Some(Period::Quarter(m / 3)),
            Period::Quarter(_) => Some(Period::Year),
            Period::Year => None,
        }
    }

    fn siblings(self) -> Vec<Period> {
        match self {
            Period::Month(m) => (0..3)
                .map(|i| Period::Month(m / 3 * 3 + i))
                .filter(|&p| p != self)
                .collect(),
            Period::Quarter(q) => (0..4)
                .map(Period::Quarter)
                .filter(|&p| p != Period::Quarter(q))
                .collect(),
            Period::Year => Vec::new(),
        }
    }

    fn children(self) -> Vec<Period> {
        match self {
            Period::Month(_) => Vec::new(),
            Period::Quarter(q) => (0..3).map(|i| Period::Month(q * 3 + i)).collect(),
            Period::Year => (0..4).map(Period::Quarter).collect(),
        }
    }
}

/// One year's counts per place × category × month (places and categories by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearTable {
    places: usize,
    categories: usize,
    counts: Vec<i64>,
}

impl YearTable {
    pub fn new(places: usize, categories: usize) -> Self {
        YearTable {
            places,
            categories,
            counts: vec![0; places * categories * MONTHS],
        }
    }

    /// Adds `n` to one month cell (`month` 0-based); out-of-range indexes are ignored.
    pub fn add(&mut self, place: usize, category: usize, month: usize, n: i64) {
        if place < self.places && category < self.categories && month < MONTHS {
            self.counts[(place * self.categories + category) * MONTHS + month] += n;
        }
    }

    pub fn places(&self) -> usize {
        self.places
    }

    pub fn categories(&self) -> usize {
        self.categories
    }
}

/// A set of categories published as one count (a status that adds up two timings, say).
/// Groups of one `family` stand side by side in a table (siblings): the statuses, or
/// the timings of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub members: Vec<usize>,
    pub family: u8,
    /// Kept longer when a cell beside a small one must go: complementary suppression
    /// takes cells of lower priority first (the single categories have 0).
    pub priority: u8,
}

/// A cell of the cube: `None` for a place or category means all of them; a category
/// is a group: the single categories first, in order, then any extra groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    pub place: Option<usize>,
    pub category: Option<usize>,
    pub period: Period,
}

/// The decision for one year: every cell's value and whether it is published.
#[derive(Debug, Clone)]
pub struct Decision {
    places: usize,
    /// Categories of the table (the single-category groups come first in `groups`).
    categories: usize,
    groups: Vec<Group>,
    values: Vec<i64>,
    suppressed: Vec<bool>,
    /// How many rounds of complementary suppression it took (for the benchmark notes).
    pub rounds: usize,
}

impl Decision {
    /// Decides which cells of `table` may be published.
    pub fn decide(table: &YearTable) -> Decision {
        Self::decide_with(table, &[])
    }

    /// Same, where `extra` groups of categories are published too (the single
    /// categories and all of them always are).
    pub fn decide_with(table: &YearTable, extra: &[Group]) -> Decision {
        let mut groups: Vec<Group> = (0..table.categories)
            .map(|k| Group {
                members: vec![k],
                family: 0,
                priority: 0,
            })
            .collect();
        groups.extend(extra.iter().cloned());
        let mut d = Decision {
            places: table.places,
            categories: table.categories,
            groups,
            values: Vec::new(),
            suppressed: Vec::new(),
            rounds: 0,
        };
        d.values = (0..d.len()).map(|i| d.sum(table, d.cell(i))).collect();
        d.suppressed = d.values.iter().map(|&v| v < THRESHOLD).collect();
        loop {
            let determined = d.determined();
            if determined.is_empty() {
                break;
            }
            d.rounds += 1;
            if d.rounds > MAX_ROUNDS {
                d.suppressed.iter_mut().for_each(|s| *s = true);
                break;
            }
            let mut added = false;
            for s in determined {
                if let Some(p) = d.partner(s) {
                    d.suppressed[p] = true;
                    added = true;
                }
            }
            if !added {
                d.suppressed.iter_mut().for_each(|s| *s = true);
                break;
            }
        }
        d.republish();
        d
    }

    /// The unknowns of the system a reader solves: the suppressed month cells (published
    /// ones are known numbers). Their number, and each month cell's unknown index.
    fn unknowns(&self) -> (usize, Vec<usize>) {
        let g = self.groups.len();
        let base = |p: usize, k: usize, m: usize| (p * (g + 1) + k) * PERIODS + m;
        let mut unknown = vec![usize::MAX; self.places * self.categories * MONTHS];
        let mut n = 0;
        for p in 0..self.places {
            for k in 0..self.categories {
                for m in 0..MONTHS {
                    if self.suppressed[base(p, k, m)] {
                        unknown[(p * self.categories + k) * MONTHS + m] = n;
                        n += 1;
                    }
                }
            }
        }
        (n, unknown)
    }

    /// The unknowns, and the published cells as equations over them (row echelon form).
    /// Published month cells are known numbers, not equations.
    fn published(&self) -> ((usize, Vec<usize>), Basis) {
        let system = self.unknowns();
        let mut basis = Basis::default();
        for i in 0..self.len() {
            let c = self.cell(i);
            if !self.suppressed[i] && !self.is_base(c) {
                basis.insert(self.vector(&system, c));
            }
        }
        (system, basis)
    }

    /// A cell as a linear form over the unknowns.
    fn vector(&self, (n, unknown): &(usize, Vec<usize>), c: Cell) -> Vec<u64> {
        let mut v = vec![0u64; *n];
        for (p, k, m) in self.cover(c) {
            let u = unknown[(p * self.categories + k) * MONTHS + m];
            if u != usize::MAX {
                v[u] = 1;
            }
        }
        v
    }

    /// Complementary suppression hides more than it must (it adds a cell per round, the
    /// first that helps). This gives back what it can: each suppressed cell of 5 or more,
    /// largest first, is published again unless that would make a cell under 5
    /// computable; the cells of 5 or more it would make computable are published with
    /// it. Each step is checked exactly, so no suppressed cell is ever computable: with
    /// every suppressed cell reduced by the published ones, publishing `c` (residual
    /// `r`) determines a suppressed `t` exactly when `t`'s residual is a multiple of `r`.
    fn republish(&mut self) {
        let (system, basis) = self.published();
        let mut residual: std::collections::BTreeMap<usize, Vec<u64>> = (0..self.len())
            .filter(|&i| self.suppressed[i])
            .map(|i| {
                let mut v = self.vector(&system, self.cell(i));
                basis.reduce(&mut v);
                (i, v)
            })
            .collect();
        let mut candidates: Vec<usize> = residual
            .keys()
            .copied()
            .filter(|&i| self.values[i] >= THRESHOLD)
            .collect();
        candidates.sort_by_key(|&i| (std::cmp::Reverse(self.values[i]), i));
        for c in candidates {
            let Some(r) = residual.get(&c) else { continue };
            let Some(pivot) = r.iter().position(|&x| x != 0) else {
                // Already computable: cannot be (the rounds above left none), so keep it.
                continue;
            };
            let inv = inverse(r[pivot]);
            let r: Vec<u64> = r.iter().map(|&x| mul(x, inv)).collect();
            // The suppressed cells publishing `c` would make computable: all 5 or more,
            // they are published with it (they add nothing a reader could not then
            // compute); any under 5 keeps `c` suppressed.
            let follow: Vec<usize> = residual
                .iter()
                .filter(|&(&t, v)| {
                    t != c && {
                        let f = v[pivot];
                        v.iter().zip(&r).all(|(&a, &b)| a == mul(f, b))
                    }
                })
                .map(|(&t, _)| t)
                .collect();
            if follow.iter().any(|&t| self.values[t] < THRESHOLD) {
                continue;
            }
            for t in std::iter::once(c).chain(follow) {
                self.suppressed[t] = false;
                residual.remove(&t);
            }
            for v in residual.values_mut() {
                let f = v[pivot];
                if f != 0 {
                    for (x, y) in v.iter_mut().zip(&r) {
                        if *y != 0 {
                            *x = sub(*x, mul(f, *y));
                        }
                    }
                }
            }
        }
    }

    /// The cell's count, or `None` when it is suppressed.
    pub fn get(&self, cell: Cell) -> Option<i64> {
        let i = self.index(cell)?;
        (!self.suppressed[i]).then_some(self.values[i])
    }

    /// Every cell with its published count (`None`: suppressed).
    pub fn cells(&self) -> impl Iterator<Item = (Cell, Option<i64>)> + '_ {
        (0..self.len()).map(|i| {
            (
                self.cell(i),
                (!self.suppressed[i]).then_some(self.values[i]),
            )
        })
    }

    fn len(&self) -> usize {
        (self.places + 1) * (self.groups.len() + 1) * PERIODS
    }

    fn index(&self, c: Cell) -> Option<usize> {
        let p = match c.place {
            Some(p) if p < self.places => p,
            Some(_) => return None,
            None => self.places,
        };
        let g = self.groups.len();
        let k = match c.category {
            Some(k) if k < g => k,
            Some(_) => return None,
            None => g,
        };
        Some((p * (g + 1) + k) * PERIODS + c.period.index())
    }

    fn cell(&self, i: usize) -> Cell {
        let g = self.groups.len();
        let t = i % PERIODS;
        let k = (i / PERIODS) % (g + 1);
        let p = i / PERIODS / (g + 1);
        Cell {
            place: (p < self.places).then_some(p),
            category: (k < g).then_some(k),
            period: Period::from_index(t),
        }
    }

    fn is_base(&self, c: Cell) -> bool {
        c.place.is_some()
            && c.category.is_some_and(|k| k < self.categories)
            && matches!(c.period, Period::Month(_))
    }

    /// The month cells a cell adds up, as (place, category, month).
    fn cover(&self, c: Cell) -> impl Iterator<Item = (usize, usize, usize)> {
        let places = c.place.map_or(0..self.places, |p| p..p + 1);
        let cats: Vec<usize> = match c.category {
            Some(k) => self.groups[k].members.clone(),
            None => (0..self.categories).collect(),
        };
        let months = c.period.months();
        places.flat_map(move |p| {
            let months = months.clone();
            cats.clone()
                .into_iter()
                .flat_map(move |k| months.clone().map(move |m| (p, k, m)))
        })
    }

    fn sum(&self, table: &YearTable, c: Cell) -> i64 {
        self.cover(c)
            .map(|(p, k, m)| table.counts[(p * self.categories + k) * MONTHS + m])
            .sum()
    }

    /// The suppressed cells a reader could compute from the published ones.
    fn determined(&self) -> Vec<usize> {
        let (system, basis) = self.published();
        (0..self.len())
            .filter(|&i| self.suppressed[i] && basis.spans(self.vector(&system, self.cell(i))))
            .collect()
    }

    /// Whether group `a` holds every category of group `b` and more.
    fn contains(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.groups[a].members, &self.groups[b].members);
        a.len() > b.len() && b.iter().all(|k| a.contains(k))
    }

    /// One published cell to suppress so that `s` is no longer determined: the smallest
    /// published sibling (same parent in one dimension), else parent, else child.
    fn partner(&self, s: usize) -> Option<usize> {
        let c = self.cell(s);
        let mut siblings = Vec::new();
        if let Some(p) = c.place {
            siblings.extend((0..self.places).filter(|&q| q != p).map(|q| Cell {
                place: Some(q),
                ..c
            }));
        }
        if let Some(k) = c.category {
            let family = self.groups[k].family;
            siblings.extend(
                (0..self.groups.len())
                    .filter(|&q| q != k && self.groups[q].family == family)
                    .map(|q| Cell {
                        category: Some(q),
                        ..c
                    }),
            );
        }
        siblings.extend(
            c.period
                .siblings()
                .into_iter()
                .map(|t| Cell { period: t, ..c }),
        );
        let mut parents = Vec::new();
        if c.place.is_some() {
            parents.push(Cell { place: None, ..c });
        }
        if let Some(k) = c.category {
            parents.extend(
                (0..self.groups.len())
                    .filter(|&q| self.contains(q, k))
                    .map(|q| Cell {
                        category: Some(q),
                        ..c
                    }),
            );
            parents.push(Cell {
                category: None,
                ..c
            });
        }
        parents.extend(c.period.parent().map(|t| Cell { period: t, ..c }));
        let mut children = Vec::new();
        if c.place.is_none() {
            children.extend((0..self.places).map(|q| Cell {
                place: Some(q),
                ..c
            }));
        }
        match c.category {
            None => children.extend((0..self.groups.len()).map(|q| Cell {
                category: Some(q),
                ..c
            })),
            Some(k) => children.extend(
                (0..self.groups.len())
                    .filter(|&q| self.contains(k, q))
                    .map(|q| Cell {
                        category: Some(q),
                        ..c
                    }),
            ),
        }
        children.extend(
            c.period
                .children()
                .into_iter()
                .map(|t| Cell { period: t, ..c }),
        );
        [siblings, parents, children].into_iter().find_map(|tier| {
            tier.into_iter()
                .filter_map(|c| self.index(c))
                .filter(|&i| !self.suppressed[i])
                .min_by_key(|&i| {
                    let priority = self.cell(i).category.map_or(0, |k| self.groups[k].priority);
                    (priority, self.values[i], i)
                })
        })
    }
}

/// Row echelon form modulo [`PRIME`], built one row at a time.
#[derive(Default)]
struct Basis {
    /// Each row with its pivot column; the pivot entry is 1 and every later row is
    /// zero at the earlier rows' pivots.
    rows: Vec<(usize, Vec<u64>)>,
}

impl Basis {
    fn reduce(&self, v: &mut [u64]) {
        for (pivot, row) in &self.rows {
            let f = v[*pivot];
            if f != 0 {
                for (x, r) in v.iter_mut().zip(row) {
                    if *r != 0 {
                        *x = sub(*x, mul(f, *r));
                    }
                }
            }
        }
    }

    fn insert(&mut self, mut v: Vec<u64>) {
        self.reduce(&mut v);
        if let Some(pivot) = v.iter().position(|&x| x != 0) {
            let inv = inverse(v[pivot]);
            v.iter_mut().for_each(|x| *x = mul(*x, inv));
            self.rows.push((pivot, v));
        }
    }

    fn spans(&self, mut v: Vec<u64>) -> bool {
        self.reduce(&mut v);
        v.iter().all(|&x| x == 0)
    }
}

fn mul(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) % PRIME as u128) as u64
}

fn sub(a: u64, b: u64) -> u64 {
    (a + PRIME - b) % PRIME
}

fn inverse(a: u64) -> u64 {
    // Fermat: a^(p-2).
    let (mut base, mut exp, mut acc) = (a, PRIME - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_small_cell_in_a_line_takes_its_smallest_sibling_with_it() {
        // One place, two categories; January: 3 and 40, the rest of the year 100 each.
        let mut t = YearTable::new(1, 2);
        for m in 0..12 {
            t.add(0, 0, m, if m == 0 { 3 } else { 100 });
            t.add(0, 1, m, if m == 0 { 40 } else { 100 });
        }
        let d = Decision::decide(&t);
        let jan = |k| Cell {
            place: Some(0),
            category: k,
            period: Period::Month(0),
        };
        assert_eq!(d.get(jan(Some(0))), None);
        // The January total minus category 1 would give it away, and so would the
        // quarter minus February and March: something beside it is suppressed too.
        let hidden = d.cells().filter(|(_, v)| v.is_none()).count();
        assert!(hidden >= 3, "only {hidden} suppressed");
        assert!(d.cells().all(|(_, v)| v.is_none_or(|v| v >= THRESHOLD)));
    }

    #[test]
    fn one_small_quarter_hides_a_rectangle_and_no_more() {
        // Two places, one category; quarters (Sergels, Hässelby): 23/9, 31/12, 27/3, 18/11.
        let mut t = YearTable::new(2, 1);
        for (p, q, n) in [(0, 0, 23), (1, 0, 9), (0, 1, 31), (1, 1, 12)] {
            for i in 0..n {
                t.add(p, 0, q * 3 + i % 3, 1);
            }
        }
        for (p, q, n) in [(0, 2, 27), (1, 2, 3), (0, 3, 18), (1, 3, 11)] {
            for i in 0..n {
                t.add(p, 0, q * 3 + i % 3, 1);
            }
        }
        let d = Decision::decide(&t);
        let q = |p, q| {
            d.get(Cell {
                place: Some(p),
                category: None,
                period: Period::Quarter(q),
            })
        };
        assert_eq!(
            [q(0, 0), q(1, 0), q(0, 1), q(1, 1)],
            [Some(23), Some(9), Some(31), Some(12)]
        );
        assert_eq!([q(0, 2), q(1, 2), q(0, 3), q(1, 3)], [None; 4]);
    }

    #[test]
    fn an_empty_year_publishes_nothing() {
        let d = Decision::decide(&YearTable::new(3, 8));
        assert!(d.cells().all(|(_, v)| v.is_none()));
    }

    #[test]
    fn a_large_year_publishes_everything() {
        let mut t = YearTable::new(2, 3);
        for p in 0..2 {
            for k in 0..3 {
                for m in 0..12 {
                    t.add(p, k, m, 50);
                }
            }
        }
        let d = Decision::decide(&t);
        assert!(d.cells().all(|(_, v)| v.is_some()));
        assert_eq!(
            d.get(Cell {
                place: None,
                category: None,
                period: Period::Year
            }),
            Some(50 * 72)
        );
    }
}
