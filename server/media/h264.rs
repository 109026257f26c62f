//! Just enough of H.264's bitstream to find pictures no other picture refers
//! to, so a poster can skip decoding them.

/// Bytes of the length before each NAL unit, from an `avcC` record (the
/// extradata of H.264 in MP4/MOV/Matroska); `None` for Annex B streams
/// (start codes, no record) or a record we do not understand.
pub(crate) fn avcc_length_size(extradata: &[u8]) -> Option<usize> {
    match extradata {
        [1, _, _, _, lengths, _, _, ..] => Some(usize::from(lengths & 3) + 1),
        _ => None,
    }
}

/// Whether an access unit in AVCC form (NAL units, each after a big-endian
/// length of `length_size` bytes) is a non-reference picture: it holds
/// slices, and every slice has `nal_ref_idc` 0, so no other picture is
/// predicted from it and decoding the others without it gives the same
/// pixels (what FFmpeg's `AVDISCARD_NONREF` relies on). False when unsure:
/// a malformed unit, or NAL types beyond plain H.264 (SVC, MVC).
pub(crate) fn is_non_reference(data: &[u8], length_size: usize) -> bool {
    let mut rest = data;
    let mut slices = 0;
    while !rest.is_empty() {
        let Some((length, after)) = rest.split_at_checked(length_size) else {
            return false;
        };
        let len = length
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        let Some((nal, after)) = after.split_at_checked(len) else {
            return false;
        };
        let Some(&header) = nal.first() else {
            return false;
        };
        let (forbidden, ref_idc, kind) = (header >> 7, (header >> 5) & 3, header & 0x1f);
        if forbidden != 0 {
            return false;
        }
        match kind {
            // Slices: coded slice, data partitions A–C, IDR slice.
            1..=5 => {
                if ref_idc != 0 {
                    return false;
                }
                slices += 1;
            }
            // Prefix NAL, subset SPS, slice extensions: SVC and MVC.
            14 | 15 | 20 | 21 => return false,
            _ => {}
        }
        rest = after;
    }
    slices > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn a_picture_whose_slices_all_have_ref_idc_zero_is_non_reference() {
        // SEI (type 6), then two non-reference slices (type 1, ref_idc 0).
        let au = unit(&[&[0x06, 0x05, 0x80], &[0x01, 0x9a, 0x00], &[0x01, 0x9b]]);
        assert!(is_non_reference(&au, 4));
    }

    #[test]
    fn reference_slices_idr_and_sliceless_units_are_not() {
        // P slice with ref_idc 2, IDR slice, a unit without a slice.
        assert!(!is_non_reference(&unit(&[&[0x41, 0x9a]]), 4));
        assert!(!is_non_reference(&unit(&[&[0x65, 0x88]]), 4));
        assert!(!is_non_reference(&unit(&[&[0x06, 0x05]]), 4));
        // One reference slice among non-reference ones.
        assert!(!is_non_reference(&unit(&[&[0x01, 0x9a], &[0x21, 0x9a]]), 4));
    }

    #[test]
    fn malformed_units_are_not_skipped() {
        let mut au = unit(&[&[0x01, 0x9a, 0x00]]);
        au.truncate(au.len() - 1);
        assert!(!is_non_reference(&au, 4));
        assert!(!is_non_reference(&[0, 0], 4));
        assert!(!is_non_reference(&unit(&[&[]]), 4));
        assert!(!is_non_reference(&unit(&[&[0x81, 0x9a]]), 4));
        assert!(!is_non_reference(&unit(&[&[0x14, 0x9a], &[0x01, 0x9a]]), 4));
    }

    #[test]
    fn lengths_may_take_one_to_four_bytes() {
        assert!(is_non_reference(&[2, 0x01, 0x9a], 1));
        assert!(is_non_reference(&[0, 2, 0x01, 0x9a], 2));
        assert_eq!(
            avcc_length_size(&[1, 0x64, 0, 0x28, 0xff, 0xe1, 0]),
            Some(4)
        );
        assert_eq!(
            avcc_length_size(&[1, 0x64, 0, 0x28, 0xfd, 0xe1, 0]),
            Some(2)
        );
        assert_eq!(avcc_length_size(&[0, 0, 0, 1, 0x67]), None);
        assert_eq!(avcc_length_size(&[]), None);
    }
}
