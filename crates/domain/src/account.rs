//! An account in the state budget, written `CHAPTER.POST` (`2650.76`) wherever configuration or
//! a contract names one: one type for budget's accounts, the account applications charges grants
//! to and the account pilot-ordering charges orders to.

use std::{fmt, str::FromStr};

use crate::serde_str::serde_via_str;

/// An account in the state budget: a chapter (kapittel) and a post within it, e.g. 2650.76.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account {
    chapter: i32,
    post: i32,
}

/// Why a chapter and post are not an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The chapter is outside 1–9999.
    #[error("chapter must be from 1 to 9999")]
    Chapter,
    /// The post is outside 1–99.
    #[error("post must be from 1 to 99")]
    Post,
    /// The text is not `CHAPTER.POST`.
    #[error("must be CHAPTER.POST, e.g. 2650.76")]
    Format,
}

impl Account {
    /// Chapter 2650 post 76: grants and pilot orders.
    pub const SCHEME: Account = Account {
        chapter: 2650,
        post: 76,
    };

    /// The account `chapter`.`post`, both in range.
    pub fn new(chapter: i32, post: i32) -> Result<Self, AccountError> {
        if !(1..=9999).contains(&chapter) {
            return Err(AccountError::Chapter);
        }
        if !(1..=99).contains(&post) {
            return Err(AccountError::Post);
        }
        Ok(Account { chapter, post })
    }

    /// An account written `CHAPTER.POST` (`2650.76`, `605.01`), as configuration names it.
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        let (chapter, post) = text.trim().split_once('.').ok_or(AccountError::Format)?;
        let number = |part: &str| -> Result<i32, AccountError> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AccountError::Format);
            }
            part.parse().map_err(|_| AccountError::Format)
        };
        Account::new(number(chapter)?, number(post)?)
    }

    /// The chapter.
    pub fn chapter(&self) -> i32 {
        self.chapter
    }

    /// The post.
    pub fn post(&self) -> i32 {
        self.post
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.chapter, self.post)
    }
}

impl FromStr for Account {
    type Err = AccountError;

    fn from_str(text: &str) -> Result<Self, AccountError> {
        Account::parse(text)
    }
}

serde_via_str!(Account);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde_str::testing::from_str;

    #[test]
    fn an_account_is_chapter_dot_post_in_range() {
        assert_eq!(Account::parse("2650.76"), Ok(Account::SCHEME));
        let admin = Account::parse("605.01").expect("valid");
        assert_eq!((admin.chapter(), admin.post()), (605, 1));
        assert_eq!(admin.to_string(), "605.01");
        assert_eq!(Account::SCHEME.to_string(), "2650.76");
        for (text, error) in [
            ("2650", AccountError::Format),
            ("2650-76", AccountError::Format),
            ("26x0.76", AccountError::Format),
            ("-1.76", AccountError::Format),
            ("10000.1", AccountError::Chapter),
            ("0.76", AccountError::Chapter),
            ("2650.100", AccountError::Post),
        ] {
            assert_eq!(Account::parse(text), Err(error), "{text}");
        }
        assert_eq!(Account::new(1, 0), Err(AccountError::Post));
        assert_eq!(from_str::<Account>("2650.76").ok(), Some(Account::SCHEME));
        assert!(from_str::<Account>("2650-76").is_err());
    }
}
