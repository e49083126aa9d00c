//! The console switch: several VMs share the machine's one console line.
//!
//! Output ([`ConsoleMux`]): each VM's bytes reach the console line by line, each line prefixed
//! with the VM's name (`[name] `). The VM with the focus writes through at once, so that a
//! shell's echo and prompt appear as they are typed; the others are held until their line is
//! complete, or until the VM goes idle (a prompt waits for input), or their buffer is full.
//! When a line of one VM must be written while another VM's partial line is open on the
//! console, the open line is ended first, and the interrupted VM's next byte starts a new
//! console line with the continuation prefix `[name]+ `: a reader (a person, or the test
//! harness rebuilding each VM's output) can tell a VM's new line from the rest of one that was
//! interrupted, which the line ends cannot (a guest's own lines may end in `\r\n`). With one VM there is nothing to tell apart: its bytes go out unchanged,
//! without prefix or buffering.
//!
//! Input ([`FocusSwitch`]): bytes received on the console go to the VM with the focus;
//! [`SWITCH_KEY`] pressed [`SWITCH_PRESSES`] times in a row moves the focus to the next VM
//! (Xen's console uses Ctrl-A three times; Ctrl-A is QEMU's own escape on `-serial mon:stdio`,
//! so Moat uses Ctrl-T). Fewer presses followed by another byte are given to the VM as typed.
//!
//! Written here rather than taken from a crate: the behaviour is Moat's own (no terminal
//! multiplexer crate fits `no_std` with a byte-at-a-time interface), and it is small.

use alloc::string::String;
use alloc::vec::Vec;

/// The key that switches the focus when pressed [`SWITCH_PRESSES`] times: Ctrl-T.
pub const SWITCH_KEY: u8 = 0x14;
/// How many presses in a row of [`SWITCH_KEY`] switch the focus.
pub const SWITCH_PRESSES: u8 = 3;
/// The longest line held for a VM without the focus; a longer one is written in pieces.
pub const LINE_BUFFER: usize = 4096;

/// One VM's side of the console.
#[derive(Debug)]
struct Stream {
    /// `[name] `.
    prefix: String,
    /// `[name]+ `: the prefix of the rest of an interrupted line.
    continuation: String,
    /// Bytes of a line not yet written (VMs without the focus).
    held: Vec<u8>,
    /// The VM's own output is in the middle of a line (its last byte was not `\n`).
    mid_line: bool,
}

/// The console line's output side, shared by the VMs and Moat's own log lines.
#[derive(Debug)]
pub struct ConsoleMux {
    streams: Vec<Stream>,
    focus: usize,
    /// The VM whose partial line is open on the console: its next byte continues it.
    open: Option<usize>,
    /// The console is at the start of a line.
    at_line_start: bool,
}

impl ConsoleMux {
    /// A console shared by VMs named `names` (in VM order); the first has the focus.
    #[must_use]
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let streams = names
            .into_iter()
            .map(|name| Stream {
                prefix: alloc::format!("[{name}] "),
                continuation: alloc::format!("[{name}]+ "),
                held: Vec::with_capacity(LINE_BUFFER),
                mid_line: false,
            })
            .collect();
        Self {
            streams,
            focus: 0,
            open: None,
            at_line_start: true,
        }
    }

    /// The number of VMs.
    #[must_use]
    pub fn vms(&self) -> usize {
        self.streams.len()
    }

    /// The name of VM `vm` (empty for an index it does not have).
    #[must_use]
    pub fn name(&self, vm: usize) -> &str {
        self.streams
            .get(vm)
            .and_then(|s| s.prefix.get(1..s.prefix.len() - 2))
            .unwrap_or("")
    }

    /// The VM with the focus.
    #[must_use]
    pub const fn focus(&self) -> usize {
        self.focus
    }

    /// Whether several VMs share the console (so lines are prefixed).
    fn shared(&self) -> bool {
        self.streams.len() > 1
    }

    /// Moves the focus to the next VM, writing out what it held back; returns the new focus.
    pub fn switch_focus(&mut self, out: &mut impl FnMut(&[u8])) -> usize {
        self.focus = (self.focus + 1) % self.streams.len().max(1);
        self.flush(self.focus, stream_len(&self.streams, self.focus), out);
        self.focus
    }

    /// A byte VM `vm` wrote to its UART; writes what is due to `out`.
    pub fn guest_byte(&mut self, vm: usize, byte: u8, out: &mut impl FnMut(&[u8])) {
        if !self.shared() {
            out(&[byte]);
            self.at_line_start = byte == b'\n';
            return;
        }
        let Some(stream) = self.streams.get_mut(vm) else {
            return;
        };
        stream.held.push(byte);
        let full = stream.held.len() >= LINE_BUFFER;
        if vm == self.focus {
            self.flush(vm, stream_len(&self.streams, vm), out);
            if byte == b'\n' {
                self.release_others(out);
            }
        } else if full {
            self.flush(vm, LINE_BUFFER, out);
        } else if byte == b'\n' && !self.focus_mid_line() {
            self.flush_lines(vm, out);
        }
    }

    /// VM `vm` went idle: its partial line (a prompt) is written out, unless the focused VM is
    /// in the middle of a line; when the focused VM idles, what the others held back is.
    pub fn idle(&mut self, vm: usize, out: &mut impl FnMut(&[u8])) {
        if vm == self.focus {
            self.release_others(out);
        } else if !self.focus_mid_line() {
            self.flush(vm, stream_len(&self.streams, vm), out);
        }
    }

    /// Before a line of Moat's own: ends an open partial line.
    pub fn before_log_line(&mut self, out: &mut impl FnMut(&[u8])) {
        if !self.at_line_start {
            out(b"\r\n");
        }
        self.open = None;
        self.at_line_start = true;
    }

    /// After a line of Moat's own (ending in a newline).
    pub fn after_log_line(&mut self) {
        self.open = None;
        self.at_line_start = true;
    }

    /// Whether the focused VM's partial line is open on the console: other VMs' lines wait
    /// for it, so that what the user is typing at is not broken up.
    fn focus_mid_line(&self) -> bool {
        self.open == Some(self.focus)
    }

    /// Writes the complete lines every VM without the focus holds.
    fn release_others(&mut self, out: &mut impl FnMut(&[u8])) {
        let focus = self.focus;
        for vm in (0..self.streams.len()).filter(|&vm| vm != focus) {
            self.flush_lines(vm, out);
        }
    }

    /// Writes the complete lines VM `vm` holds; a partial line stays held.
    fn flush_lines(&mut self, vm: usize, out: &mut impl FnMut(&[u8])) {
        let complete = self.streams.get(vm).map_or(0, |s| {
            s.held
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
        });
        self.flush(vm, complete, out);
    }

    /// Writes the first `len` bytes VM `vm` holds, each line prefixed where it starts one on
    /// the console.
    fn flush(&mut self, vm: usize, len: usize, out: &mut impl FnMut(&[u8])) {
        let Some(stream) = self.streams.get_mut(vm) else {
            return;
        };
        let len = len.min(stream.held.len());
        if len == 0 {
            return;
        }
        let mut continues = self.open == Some(vm) && stream.mid_line;
        // The VM's line was ended on the console by another's output: its rest is marked.
        let mut resumes = !continues && stream.mid_line;
        if !continues && !self.at_line_start {
            out(b"\r\n");
        }
        for line in stream.held[..len].split_inclusive(|&b| b == b'\n') {
            if resumes {
                out(stream.continuation.as_bytes());
            } else if !continues {
                out(stream.prefix.as_bytes());
            }
            out(line);
            continues = false;
            resumes = false;
        }
        let ends_line = stream.held[len - 1] == b'\n';
        stream.held.drain(..len);
        stream.mid_line = !ends_line;
        self.at_line_start = ends_line;
        self.open = (!ends_line).then_some(vm);
    }
}

/// How many bytes VM `vm` holds.
fn stream_len(streams: &[Stream], vm: usize) -> usize {
    streams.get(vm).map_or(0, |s| s.held.len())
}

/// What a received byte does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Nothing yet: a press of the switch key is held to see whether more follow.
    Held,
    /// The focus moves to the next VM.
    Switch,
    /// These bytes go to the VM with the focus (held presses of the switch key, then the byte).
    Deliver {
        /// The bytes, in order; `bytes[..len]` are valid.
        bytes: [u8; SWITCH_PRESSES as usize],
        /// How many.
        len: usize,
    },
}

/// Recognises the focus-switch key sequence in the received bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FocusSwitch {
    presses: u8,
}

impl FocusSwitch {
    /// What `byte`, received now, does.
    #[must_use]
    pub fn receive(&mut self, byte: u8) -> Received {
        if byte == SWITCH_KEY {
            self.presses += 1;
            if self.presses == SWITCH_PRESSES {
                self.presses = 0;
                return Received::Switch;
            }
            return Received::Held;
        }
        let mut bytes = [SWITCH_KEY; SWITCH_PRESSES as usize];
        let len = usize::from(self.presses) + 1;
        bytes[len - 1] = byte;
        self.presses = 0;
        Received::Deliver { bytes, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mux: &mut ConsoleMux, steps: &[(usize, &str)]) -> String {
        let mut out = Vec::new();
        for &(vm, text) in steps {
            for &b in text.as_bytes() {
                mux.guest_byte(vm, b, &mut |bytes: &[u8]| out.extend_from_slice(bytes));
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_vm_writes_through_unchanged() {
        let mut mux = ConsoleMux::new(["only"]);
        assert_eq!(run(&mut mux, &[(0, "ab\ncd")]), "ab\ncd");
    }

    #[test]
    fn lines_of_several_vms_are_prefixed_and_never_interleave() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        // b (no focus) writes half a line; a writes a line; b completes its own.
        let text = run(&mut mux, &[(1, "hel"), (0, "one\n"), (1, "lo\n")]);
        assert_eq!(text, "[a] one\n[b] hello\n");
    }

    #[test]
    fn the_focused_vm_writes_at_once_and_others_wait_for_its_line_to_end() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        let mut out = Vec::new();
        let mut sink = |bytes: &[u8]| out.extend_from_slice(bytes);
        for &b in b"$ " {
            mux.guest_byte(0, b, &mut sink);
        }
        // The prompt is out before any newline.
        for &b in b"x\n" {
            mux.guest_byte(1, b, &mut sink);
        }
        for &b in b"ls\n" {
            mux.guest_byte(0, b, &mut sink);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[a] $ ls\n[b] x\n",
            "b's line waits until the line the user types at is complete"
        );
    }

    #[test]
    fn an_idle_vm_without_focus_shows_its_prompt_and_continues_the_line() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        assert_eq!(
            run(&mut mux, &[(1, "~ # ")]),
            "",
            "held until the line ends or the VM idles"
        );
        let mut out = Vec::new();
        let mut sink = |bytes: &[u8]| out.extend_from_slice(bytes);
        mux.idle(1, &mut sink);
        for &b in b"ok\n" {
            mux.guest_byte(1, b, &mut sink);
        }
        assert_eq!(String::from_utf8(out).unwrap(), "[b] ~ # ok\n");
    }

    #[test]
    fn the_focused_vm_idle_at_its_prompt_lets_the_others_lines_out() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        assert_eq!(run(&mut mux, &[(0, "/ # "), (1, "up\n")]), "[a] / # ");
        let mut out = Vec::new();
        mux.idle(0, &mut |bytes: &[u8]| out.extend_from_slice(bytes));
        assert_eq!(String::from_utf8(out).unwrap(), "\r\n[b] up\n");
        assert_eq!(
            run(&mut mux, &[(0, "x")]),
            "[a]+ x",
            "typing resumes on a new console line, marked as the rest of the prompt's line"
        );
        assert_eq!(run(&mut mux, &[(0, "\n"), (0, "y")]), "\n[a] y");
    }

    #[test]
    fn the_rest_of_a_line_another_vm_interrupted_is_marked_as_its_continuation() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        let mut out = Vec::new();
        let mut sink = |bytes: &[u8]| out.extend_from_slice(bytes);
        for &b in b"~ # " {
            mux.guest_byte(1, b, &mut sink);
        }
        mux.idle(1, &mut sink);
        for &b in b"one\n" {
            mux.guest_byte(0, b, &mut sink);
        }
        for &b in b"ok\nnext\n" {
            mux.guest_byte(1, b, &mut sink);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[b] ~ # \r\n[a] one\n[b]+ ok\n[b] next\n"
        );
    }

    #[test]
    fn a_long_line_is_written_in_pieces_of_the_buffer_size() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        let long = "x".repeat(LINE_BUFFER + 10);
        let text = run(&mut mux, &[(1, &long)]);
        assert_eq!(text.len(), "[b] ".len() + LINE_BUFFER);
    }

    #[test]
    fn switching_the_focus_writes_what_the_new_focus_held() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        let mut out = Vec::new();
        let mut sink = |bytes: &[u8]| out.extend_from_slice(bytes);
        for &b in b"login: " {
            mux.guest_byte(1, b, &mut sink);
        }
        assert_eq!(mux.switch_focus(&mut sink), 1);
        assert_eq!((mux.name(1), mux.name(2)), ("b", ""));
        assert_eq!(String::from_utf8(out).unwrap(), "[b] login: ");
        let mut none = |_: &[u8]| {};
        assert_eq!(mux.switch_focus(&mut none), 0, "the focus cycles");
    }

    #[test]
    fn a_log_line_ends_an_open_guest_line_first() {
        let mut mux = ConsoleMux::new(["a", "b"]);
        let mut out = Vec::new();
        let mut sink = |bytes: &[u8]| out.extend_from_slice(bytes);
        for &b in b"$ " {
            mux.guest_byte(0, b, &mut sink);
        }
        mux.before_log_line(&mut sink);
        sink(b"moat: hi\r\n");
        mux.after_log_line();
        mux.guest_byte(0, b'x', &mut sink);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[a] $ \r\nmoat: hi\r\n[a]+ x"
        );
    }

    #[test]
    fn three_presses_switch_and_fewer_are_delivered_with_the_next_byte() {
        let mut keys = FocusSwitch::default();
        assert_eq!(keys.receive(SWITCH_KEY), Received::Held);
        assert_eq!(keys.receive(SWITCH_KEY), Received::Held);
        assert_eq!(keys.receive(SWITCH_KEY), Received::Switch);
        assert_eq!(keys.receive(SWITCH_KEY), Received::Held);
        assert_eq!(
            keys.receive(b'a'),
            Received::Deliver {
                bytes: [SWITCH_KEY, b'a', SWITCH_KEY],
                len: 2
            }
        );
        assert_eq!(
            keys.receive(b'b'),
            Received::Deliver {
                bytes: [b'b', SWITCH_KEY, SWITCH_KEY],
                len: 1
            }
        );
    }
}
