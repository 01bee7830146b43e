//! C2SP tlog-tiles coordinates: which tiles a tree size needs, and their paths
//! (`tile/<L>/<N>[.p/<W>]`, `tile/data/<N>[.p/<W>]`) in both directions.

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// A tile's level: a hash tile level (0–63) or the data tiles beside level 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileLevel {
    /// Hash tile at this level (level 0 holds leaf hashes).
    Hash(u8),
    /// Data tile (the log entries of the matching level-0 tile).
    Data,
}

/// One tile: level, index within the level, width (1–256; 256 is a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// The level.
    pub level: TileLevel,
    /// The index within the level.
    pub index: u64,
    /// The number of hashes or entries, 1–256.
    pub width: u16,
}

/// `256^level` leaves per hash at `level`, or `None` past `u64`.
pub fn leaves_per_hash(level: u8) -> Option<u64> {
    1u64.checked_shl(8 * u32::from(level))
        .filter(|_| u32::from(level) * 8 < 64)
}

impl Tile {
    /// The path relative to the monitoring prefix.
    pub fn path(&self) -> String {
        let level = match self.level {
            TileLevel::Hash(l) => l.to_string(),
            TileLevel::Data => "data".to_string(),
        };
        let mut out = format!("tile/{level}/{}", encode_index(self.index));
        if u64::from(self.width) < TILE_WIDTH {
            out.push_str(&format!(".p/{}", self.width));
        }
        out
    }

    /// Parses a path produced by [`Tile::path`]; `None` for anything else (including
    /// non-canonical spellings such as leading zeroes or a `.p/256`).
    pub fn parse(path: &str) -> Option<Tile> {
        let rest = path.strip_prefix("tile/")?;
        let (level_str, rest) = rest.split_once('/')?;
        let level = if level_str == "data" {
            TileLevel::Data
        } else {
            let l = parse_decimal(level_str)?;
            if l > 63 {
                return None;
            }
            TileLevel::Hash(u8::try_from(l).ok()?)
        };
        let (index_str, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                let w = parse_decimal(w)?;
                if !(1..TILE_WIDTH).contains(&w) {
                    return None;
                }
                (i, u16::try_from(w).ok()?)
            }
            None => (rest, 256),
        };
        let index = decode_index(index_str)?;
        Some(Tile {
            level,
            index,
            width,
        })
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// `index` as 3-digit path elements, all but the last prefixed with `x` (1234067 →
/// `x001/x234/067`).
pub fn encode_index(mut index: u64) -> String {
    let mut parts = vec![format!("{:03}", index % 1000)];
    index /= 1000;
    while index > 0 {
        parts.push(format!("x{:03}", index % 1000));
        index /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

fn decode_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let (last, init) = parts.split_last()?;
    let mut value: u64 = 0;
    for (i, part) in init.iter().enumerate() {
        let digits = part.strip_prefix('x')?;
        // Canonical form: no leading all-zero element.
        if i == 0 && digits == "000" {
            return None;
        }
        value = value
            .checked_mul(1000)?
            .checked_add(three_digits(digits)?)?;
    }
    value.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(s: &str) -> Option<u64> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The width of the rightmost (partial) tile at `level` for a tree of `size`:
/// `floor(size / 256^level) mod 256`; 0 means there is none.
pub fn partial_width(size: u64, level: u8) -> u16 {
    match leaves_per_hash(level) {
        Some(per) => u16::try_from((size / per) % TILE_WIDTH).unwrap_or(0),
        None => 0,
    }
}

/// The tiles that a reader needs, for every level, to compute the root of a tree of `size`:
/// each level's partial tile, if any. (The full tiles to its left are covered by the hashes of
/// the level above.)
pub fn right_edge_tiles(size: u64) -> Vec<Tile> {
    let mut out = Vec::new();
    let mut level = 0u8;
    while let Some(per) = leaves_per_hash(level) {
        if per > size {
            break;
        }
        let width = partial_width(size, level);
        if width > 0 {
            out.push(Tile {
                level: TileLevel::Hash(level),
                index: size / per / TILE_WIDTH,
                width,
            });
        }
        level += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding_matches_spec_example() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        for i in [0u64, 5, 999, 1000, 1001, 1234067, u64::MAX] {
            assert_eq!(decode_index(&encode_index(i)), Some(i));
        }
        assert_eq!(decode_index("x000/001"), None);
        assert_eq!(decode_index("01"), None);
        assert_eq!(decode_index("x1/001"), None);
        assert_eq!(decode_index("001/001"), None);
    }

    #[test]
    fn paths_round_trip() {
        let cases = [
            (
                Tile {
                    level: TileLevel::Hash(0),
                    index: 1234067,
                    width: 256,
                },
                "tile/0/x001/x234/067",
            ),
            (
                Tile {
                    level: TileLevel::Hash(1),
                    index: 3,
                    width: 17,
                },
                "tile/1/003.p/17",
            ),
            (
                Tile {
                    level: TileLevel::Data,
                    index: 0,
                    width: 1,
                },
                "tile/data/000.p/1",
            ),
        ];
        for (tile, path) in cases {
            assert_eq!(tile.path(), path);
            assert_eq!(Tile::parse(path), Some(tile));
        }
        for bad in [
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/01/000",
            "tile/x/000",
            "tile/0/",
            "tile/0/000.p/07",
            "tile/64/000",
            "tile/data/../000",
        ] {
            assert_eq!(Tile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn spec_example_sizes() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
        // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
        // 17, and one partial level 2 tile of width 1."
        let edge = right_edge_tiles(70_000);
        assert_eq!(
            edge,
            vec![
                Tile {
                    level: TileLevel::Hash(0),
                    index: 273,
                    width: 112
                },
                Tile {
                    level: TileLevel::Hash(1),
                    index: 1,
                    width: 17
                },
                Tile {
                    level: TileLevel::Hash(2),
                    index: 0,
                    width: 1
                },
            ]
        );
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
        // tile of width 1."
        assert_eq!(
            right_edge_tiles(256),
            vec![Tile {
                level: TileLevel::Hash(1),
                index: 0,
                width: 1
            }]
        );
        assert!(right_edge_tiles(0).is_empty());
        assert_eq!(partial_width(u64::MAX, 7), 255);
        assert_eq!(leaves_per_hash(8), None);
    }
}
