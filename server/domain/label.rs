//! What happened at the shelf: the label an event finally carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the shopper did, as an answer to a review task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The shopper took the product.
    Pick,
    /// The shopper put the product back.
    Return,
    /// Nothing changed hands (a false alarm of the store's model).
    None,
}

impl Action {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pick => "pick",
            Action::Return => "return",
            Action::None => "none",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pick" => Some(Action::Pick),
            "return" => Some(Action::Return),
            "none" => Some(Action::None),
            _ => None,
        }
    }
}

/// The final (or proposed) label of an event: action, product and quantity.
///
/// For `Action::None` the sku is absent and the quantity is zero, so two
/// "nothing happened" answers always compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Label {
    /// What the shopper did.
    pub action: Action,
    /// The product, absent when nothing happened.
    pub sku: Option<String>,
    /// How many units; zero when nothing happened.
    pub quantity: i64,
}

impl Label {
    /// A normalized label: `none` drops sku and quantity.
    pub fn new(action: Action, sku: Option<String>, quantity: i64) -> Label {
        match action {
            Action::None => Label {
                action,
                sku: None,
                quantity: 0,
            },
            _ => Label {
                action,
                sku,
                quantity,
            },
        }
    }
}
