"""What a certificate chain says: subject, issuer, names and validity (X.509 through the
``cryptography`` library, which parses DER safely)."""

from __future__ import annotations

from typing import Any


def describe(der: bytes) -> dict[str, Any]:
    """One certificate's fields; ``{"error": ...}`` when it does not parse."""
    # imported here, not with the plugin: X.509 support is a third of the plugin's import
    # time, and only captures with a handshake in clear (TLS 1.2 and older) show certificates
    from cryptography import x509

    try:
        certificate = x509.load_der_x509_certificate(der)
        described: dict[str, Any] = {
            "subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(),
            "serialNumber": format(certificate.serial_number, "x"),
            "notBefore": certificate.not_valid_before_utc.isoformat().replace("+00:00", "Z"),
            "notAfter": certificate.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
            "sans": [],
        }
        try:
            names = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
        except x509.ExtensionNotFound:
            return described
        described["sans"] = [str(value) for value in names.get_values_for_type(x509.DNSName)] + [
            str(value) for value in names.get_values_for_type(x509.IPAddress)
        ]
        return described
    except (ValueError, TypeError) as error:
        return {"error": f"certificate does not parse: {error}"}
