//! The macro that writes the seam's operations: for each, a function taking a [`Conn`] that
//! calls the function of the same name in the backend the connection belongs to.
//!
//! [`Conn`]: super::Conn

/// `seam! { (sqlite::module), (postgres::module); fn name(args) -> Ret; … }` defines
/// `pub fn name(conn: &Conn<'_>, args) -> Ret` dispatching to `sqlite::module::name` or
/// `postgres::module::name`, which take the backend's own connection and the same arguments.
macro_rules! seam {
    (($($s:ident)::+), ($($p:ident)::+);) => {};
    (
        ($($s:ident)::+), ($($p:ident)::+);
        $(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) -> $r:ty;
        $($rest:tt)*
    ) => {
        $(#[$m])*
        pub fn $name(conn: &Conn<'_>, $($a: $t),*) -> $r {
            match conn {
                Conn::Sqlite(c) => $($s)::+::$name(c, $($a),*),
                Conn::Postgres(c) => $($p)::+::$name(c, $($a),*),
            }
        }
        seam! { ($($s)::+), ($($p)::+); $($rest)* }
    };
}
