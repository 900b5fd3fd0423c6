"""Customers: registration by operators, staff views (masked for support), self-service."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from api.audit import AuditAction
from api.audit_trail import Trail, audited
from api.deps import CustomerOnly, OperatorOnly, StaffOnly, SyncDbConn
from api.pagination import Page, Pagination
from api.routers.device_support import CipherDep, domain_errors
from api.security.masking import mask_address, mask_email, mask_name, mask_phone
from api.security.principal import Principal
from devices import service
from devices.models import CustomerCreate, CustomerPublic, CustomerUpdate, DevicePublic

router = APIRouter(prefix="/customers", tags=["customers"])


def _for(principal: Principal, customer: CustomerPublic) -> CustomerPublic:
    """Personal data in full for operators and the customer themselves; masked otherwise."""
    if principal.sees_personal_data or principal.customer_id == customer.id:
        return customer
    return customer.model_copy(
        update={
            "name": mask_name(customer.name),
            "email": mask_email(customer.email),
            "phone": mask_phone(customer.phone),
            "address": mask_address(customer.address),
        }
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register a customer")
@audited(AuditAction.CUSTOMER_CREATED, target_kind="customer")
def create_customer(
    _: OperatorOnly, conn: SyncDbConn, cipher: CipherDep, body: CustomerCreate, trail: Trail
) -> CustomerPublic:
    """Personal data is encrypted at rest; the email must be new."""
    with domain_errors():
        customer = service.create_customer(conn, cipher, body)
    trail.record_sync(conn, target_id=str(customer.public_id))
    return customer


@router.get("", summary="Customers (staff)")
@audited(AuditAction.CUSTOMERS_LISTED, target_kind="customer", read=True)
def list_customers(
    principal: StaffOnly, conn: SyncDbConn, cipher: CipherDep, page: Pagination
) -> Page[CustomerPublic]:
    """Newest first; support staff see personal data masked."""
    before = int(page.after[0]) if page.after else None
    rows = service.list_customers(conn, cipher, page.limit + 1, before)
    result = page.page(rows, key=lambda c: [c.id])
    result.items = [_for(principal, c) for c in result.items]
    return result


@router.get("/me", summary="My customer profile")
@audited(AuditAction.CUSTOMER_VIEWED, target_kind="customer", read=True)
def get_me(principal: CustomerOnly, conn: SyncDbConn, cipher: CipherDep) -> CustomerPublic:
    """The calling customer's own details."""
    assert principal.customer_id is not None
    with domain_errors():
        return service.get_customer(conn, cipher, principal.customer_id)


@router.patch("/me", summary="Change my details")
@audited(AuditAction.CUSTOMER_UPDATED, target_kind="customer")
def update_me(
    principal: CustomerOnly,
    conn: SyncDbConn,
    cipher: CipherDep,
    body: CustomerUpdate,
    trail: Trail,
) -> CustomerPublic:
    """Name, phone, address, language and time zone (email changes go through the account)."""
    assert principal.customer_id is not None
    with domain_errors():
        updated = service.update_customer(conn, cipher, principal.customer_id, body)
    # Which fields changed, never their values.
    fields = sorted(body.model_dump(exclude_unset=True))
    trail.record_sync(conn, target_id=str(updated.public_id), details={"fields": fields})
    return updated


@router.get("/{customer_public_id}", summary="One customer (staff)")
@audited(
    AuditAction.CUSTOMER_VIEWED,
    target_kind="customer",
    target_param="customer_public_id",
    read=True,
)
def get_customer(
    principal: StaffOnly, conn: SyncDbConn, cipher: CipherDep, customer_public_id: UUID
) -> CustomerPublic:
    """Support staff see personal data masked."""
    with domain_errors():
        found = service.get_customer_by_public_id(conn, cipher, str(customer_public_id))
    return _for(principal, found)


@router.get("/{customer_public_id}/devices", summary="A customer's devices (staff)")
@audited(
    AuditAction.CUSTOMER_DEVICES_LISTED,
    target_kind="customer",
    target_param="customer_public_id",
    read=True,
)
def customer_devices(
    _: StaffOnly, conn: SyncDbConn, cipher: CipherDep, customer_public_id: UUID
) -> list[DevicePublic]:
    """Devices the customer owns or shares now, with their role."""
    with domain_errors():
        found = service.get_customer_by_public_id(conn, cipher, str(customer_public_id))
        return service.devices_visible_to(conn, found.id, limit=500)
