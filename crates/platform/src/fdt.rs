//! A reader of the loader's flattened device tree (Devicetree Specification v0.4, chapter 5)
//! that needs no heap (Moat reads the tree before it has one) and never panics: every read is
//! bounds-checked, and a malformed tree ends the walk early instead.
//!
//! Why not the `fdt` crate (0.1.5): it stops finding nodes in trees that firmware has edited.
//! libfdt, which QEMU and U-Boot use to edit a tree (`-dtb`'s memory node, `/chosen`'s initrd
//! range), leaves `FDT_NOP` tokens where it removed something, and that crate's path lookup and
//! node walk treat a `FDT_NOP` between sibling nodes as the end of their parent: on the ZCU102
//! tree as QEMU passes it, `/chosen` was not found. It also `expect`s its way through the blob.

/// `magic` of the header.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// The first version with `size_dt_struct`.
const FDT_VERSION_WITH_STRUCT_SIZE: u32 = 17;
const HEADER_LEN: usize = 40;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

/// The deepest nesting followed, root included (the ZCU102's deepest node is at 6).
pub const MAX_DEPTH: usize = 16;

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

/// The NUL-terminated string at `at`, without the NUL.
fn c_str(bytes: &[u8], at: usize) -> Option<&str> {
    let tail = bytes.get(at..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&tail[..len]).ok()
}

/// A device tree's blocks.
#[derive(Clone, Copy, Debug)]
pub struct Tree<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    /// From the memory reservation block to the end of the tree.
    reservations: &'a [u8],
    total_size: usize,
}

/// A property: its name and raw value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Property<'a> {
    /// The name, from the strings block.
    pub name: &'a str,
    /// The value bytes.
    pub value: &'a [u8],
}

impl<'a> Property<'a> {
    /// The value as one string (its terminating NUL removed), or the first of a string list.
    pub fn as_str(&self) -> Option<&'a str> {
        let first = self.value.split(|&b| b == 0).next()?;
        core::str::from_utf8(first).ok()
    }

    /// The strings of a string list (`compatible`).
    pub fn strings(&self) -> impl Iterator<Item = &'a str> + 'a {
        let value = self.value.strip_suffix(&[0]).unwrap_or(self.value);
        value
            .split(|&b| b == 0)
            .filter_map(|s| core::str::from_utf8(s).ok())
    }

    /// The value as one or two cells (a 32- or 64-bit number).
    pub fn as_u64(&self) -> Option<u64> {
        match self.value.len() {
            4 => be32(self.value, 0).map(u64::from),
            8 => Some(u64::from(be32(self.value, 0)?) << 32 | u64::from(be32(self.value, 4)?)),
            _ => None,
        }
    }
}

impl<'a> Tree<'a> {
    /// The tree in `blob`, if its header is a version-17 device tree's whose blocks lie in
    /// `blob`.
    pub fn new(blob: &'a [u8]) -> Option<Self> {
        let field = |i: usize| be32(blob, 4 * i).map(|v| v as usize);
        if be32(blob, 0)? != FDT_MAGIC || blob.len() < HEADER_LEN {
            return None;
        }
        let total_size = field(1)?;
        let (off_struct, off_strings, off_reservations) = (field(2)?, field(3)?, field(4)?);
        let (version, size_strings, size_struct) = (field(5)?, field(8)?, field(9)?);
        if version < FDT_VERSION_WITH_STRUCT_SIZE as usize || total_size > blob.len() {
            return None;
        }
        let block = |off: usize, size: usize| blob.get(off..off.checked_add(size)?);
        Some(Self {
            structure: block(off_struct, size_struct)?,
            strings: block(off_strings, size_strings)?,
            reservations: blob.get(off_reservations..total_size)?,
            total_size,
        })
    }

    /// `totalsize` from the header.
    pub fn total_size(&self) -> usize {
        self.total_size
    }

    /// The memory reservation block's entries (address, size), up to its terminating (0, 0).
    pub fn reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let block = self.reservations;
        let be64 = move |at: usize| -> Option<u64> {
            Some(u64::from(be32(block, at)?) << 32 | u64::from(be32(block, at + 4)?))
        };
        (0..)
            .map_while(move |i: usize| Some((be64(16 * i)?, be64(16 * i + 8)?)))
            .take_while(|&entry| entry != (0, 0))
    }

    /// Every node, in tree order (the root first).
    pub fn nodes(&self) -> Nodes<'a> {
        Nodes {
            tree: *self,
            pos: 0,
            depth: 0,
            stack: [Frame::default(); MAX_DEPTH],
        }
    }

    /// The node at `path` (`/axi/serial@ff000000`; a component without `@` also matches a
    /// node with a unit address, as long as it is the first such).
    pub fn find(&self, path: &str) -> Option<Node<'a>> {
        self.nodes().find(|n| n.is_at(path))
    }

    /// The properties of the node whose name ends before `pos`: those from `pos` up to its
    /// first child or its end, `FDT_NOP`s skipped.
    fn properties(&self, mut pos: usize) -> impl Iterator<Item = Property<'a>> + 'a {
        let tree = *self;
        core::iter::from_fn(move || {
            loop {
                match be32(tree.structure, pos)? {
                    FDT_NOP => pos += 4,
                    FDT_PROP => {
                        let len = be32(tree.structure, pos + 4)? as usize;
                        let name_at = be32(tree.structure, pos + 8)? as usize;
                        let start = pos + 12;
                        let value = tree.structure.get(start..start.checked_add(len)?)?;
                        pos = (start + len).checked_next_multiple_of(4)?;
                        let name = c_str(tree.strings, name_at)?;
                        return Some(Property { name, value });
                    }
                    _ => return None,
                }
            }
        })
    }
}

/// What the walk keeps of each open node.
#[derive(Clone, Copy, Debug, Default)]
struct Frame<'a> {
    name: &'a str,
    /// `#address-cells` and `#size-cells` for the node's children (2 and 1 when absent).
    child_cells: (u32, u32),
}

/// One node.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    tree: Tree<'a>,
    /// Where its properties start in the structure block.
    props: usize,
    /// Its name and its ancestors', the root's (empty) first.
    path: [&'a str; MAX_DEPTH],
    depth: usize,
    /// Its parent's `#address-cells` and `#size-cells`, which its `reg` uses.
    reg_cells: (u32, u32),
    /// Its own, for its children.
    child_cells: (u32, u32),
}

impl<'a> Node<'a> {
    /// The name with its unit address (`serial@ff000000`); empty for the root.
    pub fn name(&self) -> &'a str {
        self.path[self.depth - 1]
    }

    /// Its properties.
    pub fn properties(&self) -> impl Iterator<Item = Property<'a>> + 'a {
        self.tree.properties(self.props)
    }

    /// The first property called `name`.
    pub fn property(&self, name: &str) -> Option<Property<'a>> {
        self.properties().find(|p| p.name == name)
    }

    /// Its `#address-cells` and `#size-cells` (for its children's `reg`).
    pub fn child_cells(&self) -> (u32, u32) {
        self.child_cells
    }

    /// Its parent's `#address-cells` and `#size-cells` (for its own `reg`).
    pub fn reg_cells(&self) -> (u32, u32) {
        self.reg_cells
    }

    /// Whether its parent is the node at `path`.
    pub fn is_child_of(&self, path: &str) -> bool {
        let mut parent = *self;
        parent.depth = self.depth.saturating_sub(1);
        parent.depth >= 1 && parent.is_at(path)
    }

    /// Entry `index` of its `reg`: (address, size) in its parent's cells.
    pub fn reg(&self, index: usize) -> Option<(u64, u64)> {
        let (address_cells, size_cells) = self.reg_cells;
        if address_cells > 2 || size_cells > 2 {
            return None;
        }
        let entry = 4 * (address_cells + size_cells) as usize;
        let value = self.property("reg")?.value;
        let at = index.checked_mul(entry)?;
        let bytes = value.get(at..at.checked_add(entry)?)?;
        let mut cells = cells(bytes);
        let address = take_cells(&mut cells, address_cells as usize)?;
        let size = take_cells(&mut cells, size_cells as usize)?;
        Some((address, size))
    }

    /// Whether it is the node at `path` (see [`Tree::find`]).
    pub fn is_at(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/').filter(|p| !p.is_empty());
        let mut depth = 1;
        for part in parts.by_ref() {
            depth += 1;
            let Some(name) = self.path.get(depth - 1).filter(|_| depth <= self.depth) else {
                return false;
            };
            let same = if part.contains('@') {
                *name == part
            } else {
                name.split('@').next() == Some(part)
            };
            if !same {
                return false;
            }
        }
        depth == self.depth
    }
}

/// The walk over every node.
pub struct Nodes<'a> {
    tree: Tree<'a>,
    pos: usize,
    depth: usize,
    stack: [Frame<'a>; MAX_DEPTH],
}

impl<'a> Nodes<'a> {
    /// Skips the properties from `pos` (the walk yields them through the node).
    fn skip_properties(&mut self) -> Option<()> {
        loop {
            match be32(self.tree.structure, self.pos)? {
                FDT_NOP => self.pos += 4,
                FDT_PROP => {
                    let len = be32(self.tree.structure, self.pos + 4)? as usize;
                    self.pos = (self.pos + 12)
                        .checked_add(len)?
                        .checked_next_multiple_of(4)?;
                }
                _ => return Some(()),
            }
        }
    }

    fn begin_node(&mut self) -> Option<Node<'a>> {
        if self.depth == MAX_DEPTH {
            return None;
        }
        let name = c_str(self.tree.structure, self.pos)?;
        let props = (self.pos + name.len() + 1).checked_next_multiple_of(4)?;
        let mut child_cells = (2, 1);
        for p in self.tree.properties(props) {
            let cells = || p.as_u64().and_then(|v| u32::try_from(v).ok());
            match p.name {
                "#address-cells" => child_cells.0 = cells()?,
                "#size-cells" => child_cells.1 = cells()?,
                _ => {}
            }
        }
        let reg_cells = match self.depth {
            0 => (2, 1),
            d => self.stack[d - 1].child_cells,
        };
        self.stack[self.depth] = Frame { name, child_cells };
        self.depth += 1;
        self.pos = props;
        self.skip_properties()?;
        let mut path = [""; MAX_DEPTH];
        for (slot, frame) in path.iter_mut().zip(&self.stack[..self.depth]) {
            *slot = frame.name;
        }
        Some(Node {
            tree: self.tree,
            props,
            path,
            depth: self.depth,
            reg_cells,
            child_cells,
        })
    }
}

impl<'a> Iterator for Nodes<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Node<'a>> {
        loop {
            let token = be32(self.tree.structure, self.pos)?;
            self.pos += 4;
            match token {
                FDT_NOP => {}
                FDT_BEGIN_NODE => return self.begin_node(),
                FDT_END_NODE => self.depth = self.depth.checked_sub(1)?,
                // A property after a child, FDT_END or anything else: the walk ends.
                _ => return None,
            }
        }
    }
}

/// The big-endian 32-bit cells of a property value (a trailing partial cell is ignored).
pub fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// A number of `n` cells (0 to 2), most significant first; `None` past the end or for more
/// than 2 cells.
pub fn take_cells(cells: &mut impl Iterator<Item = u32>, n: usize) -> Option<u64> {
    if n > 2 {
        return None;
    }
    (0..n).try_fold(0u64, |acc, _| Some(acc << 32 | u64::from(cells.next()?)))
}
