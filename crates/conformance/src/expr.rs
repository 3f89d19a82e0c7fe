//! A parser for the Python call expressions in the golden files' `builder` metadata, e.g.
//! `co.Conv3d(4, 6, kernel_size=(3, 3, 3), padding=(1, 1, 1))`.

/// A parsed Python expression (the subset the builders use).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A string literal.
    Str(String),
    /// A tuple or list.
    Tuple(Vec<Expr>),
    /// A dotted name, e.g. `co.Conv3d` or `A`.
    Name(String),
    /// A call with positional and keyword arguments.
    Call {
        /// The dotted name called.
        func: String,
        /// Positional arguments.
        args: Vec<Expr>,
        /// Keyword arguments, in order.
        kwargs: Vec<(String, Expr)>,
    },
}

/// Parses one expression.
///
/// # Errors
/// A message with the position of the first character that does not parse.
pub fn parse(source: &str) -> Result<Expr, String> {
    let mut p = Parser {
        s: source.as_bytes(),
        i: 0,
    };
    let e = p.expr()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing input at {} in `{source}`", p.i));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let mut items = Vec::new();
                while !self.eat(b')') {
                    items.push(self.expr()?);
                    if !self.eat(b',') && self.peek() != Some(b')') {
                        return Err(format!("expected , or ) at {}", self.i));
                    }
                }
                Ok(Expr::Tuple(items))
            }
            Some(b'\'') | Some(b'"') => {
                let quote = self.s[self.i];
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != quote {
                    self.i += 1;
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Expr::Str(text))
            }
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'.' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric()
                        || matches!(self.s[self.i], b'.' | b'-' | b'+'))
                {
                    self.i += 1;
                }
                let text =
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                if let Ok(v) = text.parse::<i64>() {
                    Ok(Expr::Int(v))
                } else {
                    text.parse::<f64>()
                        .map(Expr::Float)
                        .map_err(|_| format!("bad number `{text}`"))
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric()
                        || matches!(self.s[self.i], b'_' | b'.'))
                {
                    self.i += 1;
                }
                let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                match name.as_str() {
                    "True" => return Ok(Expr::Bool(true)),
                    "False" => return Ok(Expr::Bool(false)),
                    "None" => return Ok(Expr::None),
                    _ => {}
                }
                if !self.eat(b'(') {
                    return Ok(Expr::Name(name));
                }
                let (mut args, mut kwargs) = (Vec::new(), Vec::new());
                while !self.eat(b')') {
                    let save = self.i;
                    self.ws();
                    let key_start = self.i;
                    while self.i < self.s.len()
                        && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                    {
                        self.i += 1;
                    }
                    let key = String::from_utf8_lossy(&self.s[key_start..self.i]).into_owned();
                    if !key.is_empty() && self.peek() == Some(b'=') {
                        self.i += 1;
                        kwargs.push((key, self.expr()?));
                    } else {
                        self.i = save;
                        args.push(self.expr()?);
                    }
                    if !self.eat(b',') && self.peek() != Some(b')') {
                        return Err(format!("expected , or ) at {}", self.i));
                    }
                }
                Ok(Expr::Call {
                    func: name,
                    args,
                    kwargs,
                })
            }
            other => Err(format!(
                "unexpected {:?} at {}",
                other.map(char::from),
                self.i
            )),
        }
    }
}
