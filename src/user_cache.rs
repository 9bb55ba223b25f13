//! The user's dashbatch cache directory: `$XDG_CACHE_HOME/dashbatch`, else `~/.cache/dashbatch` (the XDG Base Directory rule). Holds what is installed once per user, such as tokenizer vocabularies.

use std::path::PathBuf;

/// The directory, or `None` when neither `XDG_CACHE_HOME` (absolute) nor `HOME` is set.
#[must_use]
pub fn dashbatch_cache_directory() -> Option<PathBuf> {
    cache_directory_from(
        std::env::var_os(crate::env::XDG_CACHE_HOME),
        std::env::var_os(crate::env::HOME),
    )
}

/// The rule itself: a relative `XDG_CACHE_HOME` is ignored, as the specification says.
fn cache_directory_from(
    xdg_cache_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let base = xdg_cache_home
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| {
            home.map(PathBuf::from)
                .filter(|path| !path.as_os_str().is_empty())
                .map(|home| home.join(".cache"))
        })?;
    Some(base.join("dashbatch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_cache_home_wins_when_absolute_else_home_dot_cache() {
        let some = |text: &str| Some(std::ffi::OsString::from(text));
        assert_eq!(
            cache_directory_from(some("/x/cache"), some("/home/a")),
            Some(PathBuf::from("/x/cache/dashbatch"))
        );
        assert_eq!(
            cache_directory_from(some("relative"), some("/home/a")),
            Some(PathBuf::from("/home/a/.cache/dashbatch"))
        );
        assert_eq!(
            cache_directory_from(None, some("/home/a")),
            Some(PathBuf::from("/home/a/.cache/dashbatch"))
        );
        assert_eq!(cache_directory_from(None, None), None);
        assert_eq!(cache_directory_from(None, some("")), None);
    }
}
