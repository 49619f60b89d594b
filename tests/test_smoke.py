def test_settings_load_on_the_embedded_default_without_any_variable(settings):
    # given nothing but defaults, then the service has keys and a primary key id
    assert settings.VOUCHER_PRIMARY_KEY_ID in settings.VOUCHER_ENCRYPTION_KEYS
    assert len(settings.VOUCHER_INDEX_KEY) == 32
