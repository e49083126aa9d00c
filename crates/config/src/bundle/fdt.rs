//! A strict reader of flattened device trees (Devicetree Specification v0.4, chapter 5), just
//! enough for the bundle: it turns a blob into a tree of nodes whose names and property values
//! borrow the blob.
//!
//! Why not the `fdt` crate: its 0.1.5 parser indexes and `expect`s its way through the blob and
//! panics on a malformed one (a property length past the end, a name without NUL), and Moat
//! must refuse a corrupt bundle, never fall over. Every read here is bounds-checked, recursion
//! is limited to [`MAX_DEPTH`], and every failure is an [`FdtError`].

use alloc::vec::Vec;

/// `magic` of the FDT header.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// The header version written by libfdt, dtc and vm-fdt; the reader needs version 17's
/// `size_dt_struct`.
const FDT_VERSION: u32 = 17;
const HEADER_LEN: usize = 40;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// The deepest nesting accepted, root included; the bundle uses 3 levels.
pub const MAX_DEPTH: usize = 8;

/// Why a blob is not a well-formed device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FdtError {
    /// Shorter than its header or its `totalsize`.
    #[error("the blob is truncated: {len} bytes, the device tree needs {needed}")]
    Truncated {
        /// The blob's length.
        len: usize,
        /// What the header asks for.
        needed: usize,
    },
    /// Not a device tree at all.
    #[error("not a flattened device tree: magic {found:#x}, expected 0xd00dfeed")]
    BadMagic {
        /// The first word.
        found: u32,
    },
    /// A version this reader cannot read.
    #[error(
        "device tree version {version} (last compatible {last_comp_version}) is not readable as version 17"
    )]
    BadVersion {
        /// `version`.
        version: u32,
        /// `last_comp_version`.
        last_comp_version: u32,
    },
    /// The structure or strings block lies outside `totalsize`, or is misaligned.
    #[error(
        "the device tree's {block} block [{offset:#x}, +{size:#x}) lies outside its {total:#x} bytes or is misaligned"
    )]
    BadBlock {
        /// "structure" or "strings".
        block: &'static str,
        /// Its offset.
        offset: u32,
        /// Its size.
        size: u32,
        /// `totalsize`.
        total: u32,
    },
    /// The structure block ends in the middle of something.
    #[error("the structure block ends inside a token at offset {offset:#x}")]
    UnexpectedEnd {
        /// Offset in the structure block.
        offset: usize,
    },
    /// A token that cannot appear here.
    #[error("unexpected token {token:#x} at offset {offset:#x} of the structure block")]
    BadToken {
        /// The token.
        token: u32,
        /// Offset in the structure block.
        offset: usize,
    },
    /// A node or property name that is not NUL-terminated UTF-8 within its block.
    #[error("a name at offset {offset:#x} is not NUL-terminated UTF-8")]
    BadName {
        /// Offset in the structure or strings block.
        offset: usize,
    },
    /// A property after a child node (the specification puts properties first).
    #[error("a property follows a child node at offset {offset:#x}")]
    PropertyAfterChild {
        /// Offset in the structure block.
        offset: usize,
    },
    /// Nesting beyond `MAX_DEPTH` (8) levels.
    #[error("nodes nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A property: its name and raw value, both borrowed from the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Property<'a> {
    /// The name, from the strings block.
    pub name: &'a str,
    /// The value bytes.
    pub value: &'a [u8],
}

/// A node with its properties and children in blob order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    /// The name with its unit address (`ram@40000000`); empty for the root.
    pub name: &'a str,
    /// The properties.
    pub properties: Vec<Property<'a>>,
    /// The child nodes.
    pub children: Vec<Node<'a>>,
}

impl<'a> Node<'a> {
    /// The value of the first property called `name`.
    #[must_use]
    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value)
    }

    /// The name without its unit address.
    #[must_use]
    pub fn base_name(&self) -> &'a str {
        self.name.split('@').next().unwrap_or(self.name)
    }
}

/// Parses `blob` (which may be longer than the tree's `totalsize`) into its root node.
///
/// # Errors
///
/// [`FdtError`] for anything that is not a well-formed version-17 device tree.
pub fn parse(blob: &[u8]) -> Result<Node<'_>, FdtError> {
    let header = Header::parse(blob)?;
    let structure = header.structure_block(blob)?;
    let strings = header.strings_block(blob)?;
    let mut cursor = Cursor {
        bytes: structure,
        pos: 0,
        strings,
    };
    cursor.skip_nops()?;
    cursor.expect(FDT_BEGIN_NODE)?;
    let root = cursor.node(1)?;
    cursor.skip_nops()?;
    cursor.expect(FDT_END)?;
    Ok(root)
}

/// The header fields the reader uses.
struct Header {
    totalsize: u32,
    off_dt_struct: u32,
    off_dt_strings: u32,
    size_dt_strings: u32,
    size_dt_struct: u32,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

impl Header {
    fn parse(blob: &[u8]) -> Result<Self, FdtError> {
        let truncated = |needed| FdtError::Truncated {
            len: blob.len(),
            needed,
        };
        let field = |index: usize| be32(blob, index * 4).ok_or(truncated(HEADER_LEN));
        let magic = field(0)?;
        if magic != FDT_MAGIC {
            return Err(FdtError::BadMagic { found: magic });
        }
        let (totalsize, version, last_comp_version) = (field(1)?, field(5)?, field(6)?);
        if blob.len() < HEADER_LEN || blob.len() < totalsize as usize {
            return Err(truncated(HEADER_LEN.max(totalsize as usize)));
        }
        if version < FDT_VERSION || last_comp_version > FDT_VERSION {
            return Err(FdtError::BadVersion {
                version,
                last_comp_version,
            });
        }
        let (off_dt_struct, off_dt_strings) = (field(2)?, field(3)?);
        let (size_dt_strings, size_dt_struct) = (field(8)?, field(9)?);
        Ok(Self {
            totalsize,
            off_dt_struct,
            off_dt_strings,
            size_dt_strings,
            size_dt_struct,
        })
    }

    /// The structure block: inside `totalsize`, its offset and size multiples of 4 (tokens
    /// are 4-byte aligned).
    fn structure_block<'a>(&self, blob: &'a [u8]) -> Result<&'a [u8], FdtError> {
        let (offset, size) = (self.off_dt_struct, self.size_dt_struct);
        let aligned = offset.is_multiple_of(4) && size.is_multiple_of(4);
        match self.block(blob, offset, size) {
            Some(block) if aligned => Ok(block),
            _ => Err(self.bad_block("structure", offset, size)),
        }
    }

    /// The strings block: inside `totalsize`.
    fn strings_block<'a>(&self, blob: &'a [u8]) -> Result<&'a [u8], FdtError> {
        let (offset, size) = (self.off_dt_strings, self.size_dt_strings);
        self.block(blob, offset, size)
            .ok_or(self.bad_block("strings", offset, size))
    }

    /// `[offset, offset + size)` of the blob, if it lies inside `totalsize` (which
    /// [`Header::parse`] checked to lie inside the blob).
    fn block<'a>(&self, blob: &'a [u8], offset: u32, size: u32) -> Option<&'a [u8]> {
        let end = offset
            .checked_add(size)
            .filter(|&end| end <= self.totalsize)?;
        blob.get(offset as usize..end as usize)
    }

    fn bad_block(&self, block: &'static str, offset: u32, size: u32) -> FdtError {
        FdtError::BadBlock {
            block,
            offset,
            size,
            total: self.totalsize,
        }
    }
}

/// A position in the structure block.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    strings: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Result<u32, FdtError> {
        be32(self.bytes, self.pos).ok_or(FdtError::UnexpectedEnd { offset: self.pos })
    }

    fn word(&mut self) -> Result<u32, FdtError> {
        let word = self.peek()?;
        self.pos += 4;
        Ok(word)
    }

    fn expect(&mut self, token: u32) -> Result<(), FdtError> {
        let offset = self.pos;
        match self.word()? {
            found if found == token => Ok(()),
            found => Err(FdtError::BadToken {
                token: found,
                offset,
            }),
        }
    }

    fn skip_nops(&mut self) -> Result<(), FdtError> {
        while self.peek()? == FDT_NOP {
            self.pos += 4;
        }
        Ok(())
    }

    /// `len` bytes, then padding to the next 4-byte boundary.
    fn take(&mut self, len: usize) -> Result<&'a [u8], FdtError> {
        let unexpected_end = FdtError::UnexpectedEnd { offset: self.pos };
        let end = self.pos.checked_add(len).ok_or(unexpected_end)?;
        let bytes = self.bytes.get(self.pos..end).ok_or(unexpected_end)?;
        self.pos = end.checked_next_multiple_of(4).ok_or(unexpected_end)?;
        Ok(bytes)
    }

    /// A node whose `FDT_BEGIN_NODE` was just read, at nesting `depth`.
    fn node(&mut self, depth: usize) -> Result<Node<'a>, FdtError> {
        if depth > MAX_DEPTH {
            return Err(FdtError::TooDeep);
        }
        let name_len = c_string_len(self.bytes, self.pos)?;
        let name = str_at(self.bytes, self.pos, name_len)?;
        self.take(name_len + 1)?;
        let mut node = Node {
            name,
            properties: Vec::new(),
            children: Vec::new(),
        };
        loop {
            let offset = self.pos;
            match self.word()? {
                FDT_NOP => {}
                FDT_PROP if !node.children.is_empty() => {
                    return Err(FdtError::PropertyAfterChild { offset });
                }
                FDT_PROP => node.properties.push(self.property()?),
                FDT_BEGIN_NODE => node.children.push(self.node(depth + 1)?),
                FDT_END_NODE => return Ok(node),
                token => return Err(FdtError::BadToken { token, offset }),
            }
        }
    }

    /// A property whose `FDT_PROP` was just read.
    fn property(&mut self) -> Result<Property<'a>, FdtError> {
        let len = self.word()? as usize;
        let name_offset = self.word()? as usize;
        let value = self.take(len)?;
        let name_len = c_string_len(self.strings, name_offset)?;
        let name = str_at(self.strings, name_offset, name_len)?;
        Ok(Property { name, value })
    }
}

/// The length of the NUL-terminated string at `offset` of `bytes`, NUL excluded.
fn c_string_len(bytes: &[u8], offset: usize) -> Result<usize, FdtError> {
    let tail = bytes.get(offset..).ok_or(FdtError::BadName { offset })?;
    tail.iter()
        .position(|&b| b == 0)
        .ok_or(FdtError::BadName { offset })
}

fn str_at(bytes: &[u8], offset: usize, len: usize) -> Result<&str, FdtError> {
    core::str::from_utf8(&bytes[offset..offset + len]).map_err(|_| FdtError::BadName { offset })
}
