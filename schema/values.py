"""The value objects nested in a stored document (a talk's disposition, bot, service; a
customer's custom fields, telephones, e-mails, profile): no identity, built from the
document's parts."""

from __future__ import annotations

import strawberry
from strawberry import ID

from schema.building import field, pii_field
from schema.scalars import UtcDateTime


@strawberry.type(description="A tabulation (disposition) option, as configured in PipeRun.")
class Disposition:
    id: ID = field("Internal id of the tabulation.")
    description: str | None = field("Name of the tabulation, e.g. 'Finalizado pelo BOT'.")
    external_id: str | None = field("Id of the tabulation in an external system.")


@strawberry.type(description="A variable captured by the bot during the pre-service.")
class BotVariable:
    var_name: str | None = field("Name of the variable, e.g. @bot_score.")
    value: str | None = pii_field("Captured value, as text.")


@strawberry.type(description="The bot that did the pre-service of a talk.")
class Bot:
    id: ID = field("Internal id of the bot.")
    description: str | None = field("Name of the bot.")


@strawberry.type(description="An entry of the service catalog a talk is about.")
class ServiceCatalog:
    id: ID = field("Internal id of the service.")
    description: str | None = field("Name of the service.")
    external_id: str | None = field("Id of the service in an external system.")


@strawberry.type(description="A custom field of a customer: a name and its value as text.")
class CustomField:
    name: str = field("Name of the custom field, as configured in PipeRun.")
    value: str | None = field("Value of the field as text (JSON for structured values).")


@strawberry.type(description="A telephone number of a customer.")
class Telephone:
    id: ID | None = field("Internal id of the telephone.")
    customer_id: ID | None = field("Internal id of the customer the number belongs to.")
    area_code: str | None = field("Area code (DDD).")
    number: str | None = field("Number without country and area code.")
    type: str | None = field("Kind of number as PipeRun codes it, e.g. m for mobile.")
    level_id: str | None = field("Level code of the number in PipeRun.")
    has_sms: bool = field("Whether the number receives SMS.")
    has_whatsapp: bool = field("Whether the number has WhatsApp.")
    has_whatsapp_api: bool = field("Whether the number is reached through the WhatsApp API.")
    wa_is_business: bool = field("Whether the WhatsApp account is a business account.")
    wa_is_enterprise: bool = field("Whether the WhatsApp account is an enterprise account.")
    wa_contact_name: str | None = field("Contact name on WhatsApp.")
    wa_pushname: str | None = field("Push name the customer set on WhatsApp.")
    wa_verified_level: str | None = field("WhatsApp verification level.")
    wa_verified_name: str | None = field("Verified WhatsApp business name.")
    wa_profile_picture: str | None = field("URL of the WhatsApp profile picture.")
    session_expires_at: UtcDateTime | None = field("When the WhatsApp session window closes.")
    insert_origin: str | None = field("How the number entered PipeRun, e.g. MAILING.")
    inserted_by: int | None = field("Internal id of the user who added the number.")
    country_code: str | None = field("Country calling code, e.g. 55.")
    country_iso2: str | None = field("ISO 3166-1 alpha-2 country, e.g. br.")
    full_number: str | None = field("Area code and number.")
    full_number_cc: str | None = field("Number with country code, e.g. +55 51999887766.")


@strawberry.type(description="An e-mail address of a customer.")
class Email:
    id: ID | None = field("Internal id of the e-mail address.")
    customer_id: ID | None = field("Internal id of the customer the address belongs to.")
    email: str | None = field("The address.")
    level_id: str | None = field("Level code of the address in PipeRun.")
    insert_origin: str | None = field("How the address entered PipeRun, e.g. AUTO.")
    inserted_by: int | None = field("Internal id of the user who added the address.")
    unsubscribed_at: UtcDateTime | None = field("When the customer unsubscribed, if ever.")


@strawberry.type(description="Social-network profile of a customer (Instagram, Facebook).")
class ProfileInfo:
    id: str | None = field("Id of the profile on the social network.")
    name: str | None = field("Display name on the profile.")
    username: str | None = field("Username (handle) on the profile.")
    profile_pic: str | None = field("URL of the profile picture.")
    is_verified_user: bool = field("Whether the profile is verified.")
    follower_count: int | None = field("Number of followers.")
    is_user_follow_business: bool = field("Whether the customer follows the company.")
    is_business_follow_user: bool = field("Whether the company follows the customer.")
