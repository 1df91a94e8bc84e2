//! The canonical model's rules applied to a whole listing: what makes it invalid, and what
//! optional field is dropped as implausible.

use super::bounds::{
    check_absolute_url, check_amount, check_area, check_coordinates, check_currency, check_floor,
    check_list, check_native_id, check_on_market_date, check_rooms, check_text, check_url,
};
use super::{
    InvalidListing, Listing, ListingDetails, ListingStatus, MAX_ADDRESS_LINE_BYTES, MAX_CITY_BYTES,
    MAX_EQUIPMENT_BYTES, MAX_EQUIPMENT_ITEMS, MAX_IMAGE_URL_BYTES, MAX_IMAGES,
    MAX_LIVING_AREA_SQFT, MAX_LOT_SIZE_SQFT, MAX_PLAUSIBLE_DAYS_ON_MARKET,
    MIN_PLAUSIBLE_LIVING_AREA_SQFT, MIN_PLAUSIBLE_SQFT_PER_BEDROOM, MarketKey, Offer, quote,
    sqft_from_sqm,
};

impl Listing {
    /// Checks every rule of the canonical model. Sources run it on what they build (after
    /// [`Listing::clear_implausible_optionals`]); [`ListingEvent::decode`](super::ListingEvent::decode) runs it on what it
    /// reads.
    pub fn validate(&self) -> Result<(), InvalidListing> {
        self.check_id()?;
        self.check_money()?;
        self.check_sizes()?;
        if let Some(line) = &self.address.line {
            check_text("address.line", line, MAX_ADDRESS_LINE_BYTES)?;
        }
        if let Some(neighbourhood) = &self.address.neighbourhood {
            check_text("address.neighbourhood", neighbourhood, MAX_CITY_BYTES)?;
        }
        self.details.validate(self.living_area_sqft)?;
        self.check_market()?;
        if let Some(point) = self.coordinates {
            check_coordinates(point)?;
        }
        if let Some(date) = self.on_market_date {
            check_on_market_date(date, self.observed_at)?;
        }
        if let Some(url) = &self.source_url {
            check_url(url)?;
        }
        Ok(())
    }

    /// The id: the source's prefix, then a native id within its rules.
    fn check_id(&self) -> Result<(), InvalidListing> {
        match self.id.source() {
            Some(source) if source == self.source => check_native_id(self.id.native_id()),
            _ => Err(InvalidListing::new(
                "id",
                format!(
                    "{} does not start with the source prefix \"{}:\"",
                    quote(self.id.as_str()),
                    self.source
                ),
            )),
        }
    }

    /// The currency (the market's own, where its country has one) and the amounts in it.
    fn check_money(&self) -> Result<(), InvalidListing> {
        check_currency(&self.currency)?;
        if let Some(expected) = self.address.country.market_currency()
            && self.currency != expected
        {
            return Err(InvalidListing::new(
                "currency",
                format!(
                    "{} in {}: markets there count in {expected}, and amounts of two \
                     currencies are never added together",
                    quote(&self.currency),
                    self.address.country
                ),
            ));
        }
        check_amount("price_minor", self.price_minor, &self.currency, self.offer)?;
        if let Some(previous) = self.previous_price_minor {
            check_amount("previous_price_minor", previous, &self.currency, self.offer)?;
        }
        if let Some(rent) = self.rent_estimate_minor {
            check_amount("rent_estimate_minor", rent, &self.currency, Offer::Rent)?;
        }
        Ok(())
    }

    /// The rooms and the areas.
    fn check_sizes(&self) -> Result<(), InvalidListing> {
        if let Some(beds) = self.beds {
            check_rooms("beds", f64::from(beds))?;
        }
        if let Some(baths) = self.baths {
            check_rooms("baths", f64::from(baths))?;
        }
        if let Some(area) = self.living_area_sqft {
            check_area(
                "living_area_sqft",
                u64::from(area),
                u64::from(MAX_LIVING_AREA_SQFT),
            )?;
        }
        if let Some(lot) = self.lot_size_sqft {
            check_area("lot_size_sqft", lot, MAX_LOT_SIZE_SQFT)?;
        }
        Ok(())
    }

    /// The market key: the one the address gives.
    fn check_market(&self) -> Result<(), InvalidListing> {
        let market = MarketKey::for_address(&self.address)?;
        if market != self.market {
            let zip = |zip: &Option<String>| zip.as_deref().map_or("null".to_owned(), quote);
            return Err(InvalidListing::new(
                "market",
                format!(
                    "{}/{} does not match the address (expected {}/{})",
                    quote(&self.market.city_state),
                    zip(&self.market.zip),
                    quote(&market.city_state),
                    zip(&market.zip)
                ),
            ));
        }
        Ok(())
    }

    /// Sets to `None` every optional field that breaks its rule, so one bad detail (a zero
    /// lot, a `priceChange` larger than the price, a street line over its size limit) costs
    /// that detail, not the listing.
    pub fn clear_implausible_optionals(&mut self) {
        let (currency, offer) = (self.currency.as_str(), self.offer);
        let keep_amount = |field, amount: Option<i64>, offer| {
            amount.filter(|&a| check_amount(field, a, currency, offer).is_ok())
        };
        self.previous_price_minor =
            keep_amount("previous_price_minor", self.previous_price_minor, offer);
        self.rent_estimate_minor =
            keep_amount("rent_estimate_minor", self.rent_estimate_minor, Offer::Rent);
        self.beds = self
            .beds
            .filter(|&b| check_rooms("beds", f64::from(b)).is_ok());
        self.baths = self
            .baths
            .filter(|&b| check_rooms("baths", f64::from(b)).is_ok());
        let beds = self.beds.map_or(0, u32::from);
        self.living_area_sqft = self.living_area_sqft.filter(|&a| {
            check_area(
                "living_area_sqft",
                u64::from(a),
                u64::from(MAX_LIVING_AREA_SQFT),
            )
            .is_ok()
                && a >= MIN_PLAUSIBLE_LIVING_AREA_SQFT
                && a >= beds.saturating_mul(MIN_PLAUSIBLE_SQFT_PER_BEDROOM)
        });
        self.lot_size_sqft = self
            .lot_size_sqft
            .filter(|&a| check_area("lot_size_sqft", a, MAX_LOT_SIZE_SQFT).is_ok());
        self.coordinates = self.coordinates.filter(|&p| check_coordinates(p).is_ok());
        let (observed_at, status) = (self.observed_at, self.status);
        self.on_market_date = self.on_market_date.filter(|&d| {
            let days_on = (observed_at.date_naive() - d).num_days();
            check_on_market_date(d, observed_at).is_ok()
                && days_on <= MAX_PLAUSIBLE_DAYS_ON_MARKET
                // Only a listing announced before it goes on sale has its date ahead (a day
                // of slack for the source's time zone): any other's is a typo, not a
                // brand-new listing.
                && (days_on >= -1 || status == ListingStatus::ComingSoon)
        });
        self.source_url = self.source_url.take().filter(|u| check_url(u).is_ok());
        self.address.line = self
            .address
            .line
            .take()
            .filter(|l| check_text("address.line", l, MAX_ADDRESS_LINE_BYTES).is_ok());
        self.address.neighbourhood = self
            .address
            .neighbourhood
            .take()
            .filter(|n| check_text("address.neighbourhood", n, MAX_CITY_BYTES).is_ok());
        let details = &mut self.details;
        details.floor = details.floor.filter(|&f| check_floor(f).is_ok());
        details.equipment.retain(|e| check_equipment(e).is_ok());
        details.equipment.truncate(MAX_EQUIPMENT_ITEMS);
        details.images.retain(|url| check_image(url).is_ok());
        details.images.truncate(MAX_IMAGES);
        // An area in square metres stands only with its conversion beside it.
        if details.living_area_sqm.is_some()
            && details.living_area_sqm.map(sqft_from_sqm) != self.living_area_sqft
        {
            details.living_area_sqm = None;
        }
    }
}

impl ListingDetails {
    /// Checks the details of a listing whose living area in square feet is `living_area_sqft`.
    fn validate(&self, living_area_sqft: Option<u32>) -> Result<(), InvalidListing> {
        if let Some(sqm) = self.living_area_sqm {
            let expected = sqft_from_sqm(sqm);
            if living_area_sqft != Some(expected) {
                return Err(InvalidListing::new(
                    "details.living_area_sqm",
                    format!(
                        "{sqm} m² needs living_area_sqft {expected} beside it, found {}",
                        living_area_sqft.map_or("none".to_owned(), |a| a.to_string())
                    ),
                ));
            }
        }
        if let Some(floor) = self.floor {
            check_floor(floor)?;
        }
        check_list(
            "details.equipment",
            &self.equipment,
            MAX_EQUIPMENT_ITEMS,
            check_equipment,
        )?;
        check_list("details.images", &self.images, MAX_IMAGES, check_image)
    }
}

fn check_equipment(label: &str) -> Result<(), InvalidListing> {
    check_text("details.equipment", label, MAX_EQUIPMENT_BYTES)?;
    if label.trim().is_empty() {
        return Err(InvalidListing::new("details.equipment", "empty label"));
    }
    Ok(())
}

fn check_image(url: &str) -> Result<(), InvalidListing> {
    check_absolute_url("details.images", url, MAX_IMAGE_URL_BYTES)
}
